"""Publish: the verdict to GitHub (the PR comment through the REST API)."""
