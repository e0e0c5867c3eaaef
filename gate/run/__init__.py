"""Run: every case through the team's pipeline (adapters), concurrently, into records."""
