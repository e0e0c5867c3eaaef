"""The retry policy's Retry-After reading where a reply carries it (the parser's own cases are in
test_adapters.py), and the transport's redaction."""

from __future__ import annotations

import pytest

from gate.retry import retry_after
from gate.scrub import Scrubber

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
NOW = 1445412480.0  # DATE in epoch seconds


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": DATE}, 30.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, None),  # no clock to count from
        ({"Retry-After": "4", "Date": "garbage"}, 4.0),
        ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),
        ({"retry-after-ms": "soon", "Retry-After": "1"}, 1.0),
        ({}, None),
    ],
)
def test_retry_after__an_http_date_counts_from_the_replys_own_date(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(headers) == expected


def test_retry_after__a_given_now_wins_over_the_replys_date() -> None:
    headers = {
        "Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT",
        "Date": "Thu, 01 Jan 2015 00:00:00 GMT",
    }
    assert retry_after(headers, now=NOW + 10) == 20.0


def test_redact__every_secret_and_never_an_empty_one() -> None:
    scrub = Scrubber(("sk-1", "", "tok-2"), patterns=())
    assert scrub.text("key sk-1 and tok-2") == "key *** and ***"
