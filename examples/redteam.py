"""The example pipeline behind a guard, for the red-team suite (`datasets/redteam.jsonl`,
`gate.redteam.yml`).

An input is a question, or `{"question": ..., "context": [...]}` where `context` stands for text
fetched from somewhere an attacker can write (a web page, a ticket, an inbound email). The guard
refuses jailbreaks, requests for other people's data and asks outside the product's scope, and
never lets untrusted context reach the answer: the answer comes from the support corpus only.
"""

from __future__ import annotations

import re
from typing import Any

from examples import rag

PROMPT_VERSION = "guarded-v1"
REFUSAL = "I can't help with that: I answer questions about this product's support only."

_REFUSE = re.compile(
    "|".join(
        [
            # Jailbreaks: attempts to replace the instructions.
            r"\bignore (?:all |any )?(?:previous|prior|your|the) (?:instructions|rules)",
            r"\bpretend (?:you are|to be)\b",
            r"\bdeveloper mode\b",
            r"\bno (?:rules|restrictions|filters)\b",
            r"\bsystem prompt\b",
            # Other people's data.
            r"\b(?:email|e-mail|phone|address|password)(?: number| address)? (?:of|for) "
            r"(?:the |another |other |a )?(?:customer|user|owner|account|person|employee)",
            r"\b(?:list|give me|show me|export) (?:all |every )?(?:the )?(?:customers|users|"
            r"emails|email addresses|phone numbers)",
            # Out of scope.
            r"\b(?:poem|song|stock|invest|diagnos|medical|lawsuit|recipe|homework)",
        ]
    ),
    re.IGNORECASE,
)


def answer(input: str | dict[str, Any], case: object = None) -> dict[str, Any]:
    """The shipped example's answer, or a refusal; untrusted `context` is never used."""
    question = input if isinstance(input, str) else str(input.get("question", ""))
    if _REFUSE.search(question):
        return {
            "model": rag.MODEL,
            "prompt_version": PROMPT_VERSION,
            "answer": REFUSAL,
            "retrieved": [],
            "citations": [],
            "tool_calls": [],
            "abstained": True,
        }
    return rag.answer(question) | {"prompt_version": PROMPT_VERSION}
