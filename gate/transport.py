"""HTTP for every client of the gate: pooled sessions, JSON POSTs whose failures are sorted the way
``gate.retry`` retries them, and secrets kept out of every message built from a reply."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from gate.retry import CaseTimeout, Transient, retry_after


class HttpRefused(Exception):
    """A reply a retry would not fix: a 4xx other than 429, or a body that is not JSON."""


def session(pool_size: int, headers: Mapping[str, str] | None = None) -> requests.Session:
    """A session keeping up to ``pool_size`` connections open (one per concurrent caller, so
    they are reused across calls), which never retries by itself: ``gate.retry`` does."""
    made = requests.Session()
    made.headers.update(headers or {})
    pool = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    made.mount("http://", pool)
    made.mount("https://", pool)
    return made


def redact(text: str, secrets: Collection[str]) -> str:
    """``text`` with every secret replaced: servers quote a rejected token back, sometimes whole."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_json(
    session: requests.Session,
    url: str,
    body: Any,
    timeout_s: float,
    *,
    label: str = "",
    secrets: Collection[str] = (),
) -> Any:
    """POST ``body`` as JSON and return the decoded reply, classifying every failure.

    Timeouts raise ``CaseTimeout``; connection errors, 429 and 5xx raise ``Transient`` (with the
    server's requested wait) for the caller to retry; anything else ``HttpRefused``. Messages
    carry the exception type, never its text (requests quotes headers, and with them tokens),
    and the server's own explanation has ``secrets`` redacted.
    """
    try:
        response = session.post(url, json=body, timeout=timeout_s)
    except requests.Timeout:
        raise CaseTimeout(f"{label}no reply from {url} after {timeout_s:g} s") from None
    except requests.RequestException as exc:
        raise Transient(f"{label}cannot reach {url}: {type(exc).__name__}") from None
    status = response.status_code
    # A labelled caller (a model name) says where; otherwise the URL does.
    source = "" if label else f" from {url}"
    if status == 429 or status >= 500:
        detail = _detail(response, secrets)
        wait = retry_after(response.headers)
        # A 503 that says when to come back is the server shedding load; without, it is down.
        limited = status == 429 or (status == 503 and wait is not None)
        raise Transient(f"{label}HTTP {status}{source}{detail}", wait, rate_limited=limited)
    if status >= 400:
        raise HttpRefused(f"{label}HTTP {status}{source}{_detail(response, secrets)}")
    try:
        return response.json()
    except ValueError:
        text = redact(response.text, secrets)[:200]
        raise HttpRefused(f"{label}the reply is not JSON: {text!r}") from None


def _detail(response: requests.Response, secrets: Collection[str]) -> str:
    """The server's own explanation (an OpenAI-style ``error.message``, else the body), short."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    text = error.get("message") if isinstance(error, dict) else error
    if not isinstance(text, str) or not text:
        text = response.text
    # Redacted before cut short: a cut could leave the start of a secret.
    text = redact(" ".join(str(text).split()), secrets)[:200]
    return f": {text}" if text else ""
