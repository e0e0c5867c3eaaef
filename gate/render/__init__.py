"""Render: the verdict as report.json (built in one place), Markdown and JUnit."""
