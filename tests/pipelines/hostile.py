"""Python pipelines that misbehave the way unlucky or hostile ones do: ``hostile:NAME``.

Run by the python adapter in its worker processes (``isolation: process``).
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def answer(question: Any, case: Any) -> dict[str, Any]:
    return {"answer": f"echo: {question}", "pid": os.getpid()}


def gil_loop(question: Any, case: Any) -> dict[str, Any]:
    """A C loop that never releases the GIL (the thread mode could never stop it)."""
    if question == "spin":
        sum(range(10**12))
    return answer(question, case)


def exit_process(question: Any, case: Any) -> dict[str, Any]:
    if question == "exit":
        os._exit(0)
    return answer(question, case)


def grandchild(question: Any, case: Any) -> dict[str, Any]:
    """Starts a long sleep that inherits stdout, writes its pid down, then hangs."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(question).write_text(str(child.pid))
    time.sleep(600)
    return answer(question, case)


def unserialisable(question: Any, case: Any) -> Any:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    outputs = {
        "deep": {"answer": "x", "trace": deep},
        "tuple-key": {"answer": "x", "spans": {(1, 2): "a"}},
        "huge-int": {"answer": "x", "count": 10**5000},
        "nan": {"answer": "x", "usage": {"cost_usd": float("nan")}},
        "object": {"answer": object()},
    }
    return outputs.get(question, {"answer": f"echo: {question}"})


def environ_probe(question: Any, case: Any) -> dict[str, Any]:
    """Looks for ``question`` (the token's value) in its environment and its ancestors'."""
    found = [f"os.environ[{k}]" for k, v in os.environ.items() if question in v]
    pid = os.getpid()
    while pid > 1:
        try:
            if question.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(f"/proc/{pid}/environ")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return {"answer": "clean" if not found else "found in " + ", ".join(found)}
