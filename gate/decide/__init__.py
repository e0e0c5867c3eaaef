"""Decide: pure functions from the plan and the scored run to the verdict (statistics, rules,
drift, the next baseline). Nothing here reads a file, the environment or the clock."""
