"""Failures become cases (filled in below)."""
