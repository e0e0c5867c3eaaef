"""The errors a user can fix. Anything else that escapes is a bug in the gate (exit 3)."""


class GateError(Exception):
    """Wrong input: config, dataset, thresholds, baseline or command line (exit 2)."""


class ConfigError(GateError):
    """gate.yml or a thresholds file is wrong."""


class DatasetError(GateError):
    """The golden set (or a replay file) is wrong."""


class BaselineError(GateError):
    """The baseline file cannot be read or is of an incompatible schema."""


class AdapterError(GateError):
    """The pipeline could not be set up (bad target, command not found)."""


class GitHubError(GateError):
    """The GitHub API refused or failed a request."""
