"""Text for the job log: what the gate prints that carries data can never command the runner.

The Actions runner reads every line a step prints: a line starting with ``::`` (after spaces)
is a workflow command, and so is one containing ``##[`` (the older syntax). A dataset tag, a
model's answer or an API's reply may hold either, and control characters besides (an ANSI
escape recolours or hides the log, U+202E reverses what a reviewer reads). Everything printed
from data goes through `log_text`, every command through `workflow_command`; the Markdown
renderer shares `visible`.
"""

from __future__ import annotations

import re

ZWSP = "\u200b"
"""A zero-width space: breaks a trigger (``::``, ``@``) while the text still reads the same."""

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters (tab and newline aside) and the bidirectional marks and overrides."""
_COMMAND = re.compile(r"^[^\S\n]*:(?=:)|#(?=#\[)", re.MULTILINE)


def visible(text: str) -> str:
    """Control characters and bidi overrides as their ``\\u`` codes: shown, never obeyed."""
    return _INVISIBLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def log_text(text: str) -> str:
    """Text that may carry data, as printed to the job log: no line of it is a command."""
    return _COMMAND.sub(lambda found: found.group() + ZWSP, visible(text))


def workflow_command(command: str, message: str = "", **properties: str) -> str:
    """A ``::command key=value::message`` line, escaped so no text can end it early."""
    listed = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + listed if listed else ''}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return visible(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
