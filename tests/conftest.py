"""Fixtures every test file can ask for: projects on disk, the fake GitHub and OpenAI servers,
the waits a retry loop asked for.

The builders behind them live in ``builders.py``; the fakes in ``fake_github.py`` and
``fake_openai.py``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import MakeProject, copy_example, write_project
from fake_github import FakeGitHub
from fake_openai import KEY, FakeOpenAI

# Child processes (`python -m gate`, the action's run in a child) import the gate under test,
# not whichever copy happens to be installed: a git worktree or a clone beside an editable
# install of another checkout tests its own code.
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """``write_project`` into ``tmp_path``: ``make_project(cases, thresholds, **gate_yml)``."""
    return functools.partial(write_project, tmp_path)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the shipped example (config, golden set, thresholds, baseline, pipeline) to break
    or to write a baseline in, at ``tmp_path/workspace``: where a workflow checks it out."""
    return copy_example(tmp_path / "workspace")


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A fake Chat Completions server, its key in ``OPENAI_API_KEY``."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a client or runner asked for, given ``sleep=sleeps.append``."""
    return []
