"""gate: decide whether an LLM feature may ship."""

__version__ = "0.1.0"
