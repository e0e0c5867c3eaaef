"""Python pipelines for the runner's and the python adapter's tests: ``pipeline_functions:NAME``.

``RELEASE`` ends every deliberate wait, so a test can let a timed-out call finish instead of
leaving it sleeping.
"""

import sys
import threading
from typing import Any

RELEASE = threading.Event()


def answer(question: Any, case: Any) -> dict[str, Any]:
    return {"answer": f"echo: {question}", "case_id": case.id, "case_type": type(case).__name__}


def fail(question: Any, case: Any) -> dict[str, Any]:
    raise KeyError(f"no document for {question!r}")


def own_timeout(question: Any, case: Any) -> dict[str, Any]:
    raise TimeoutError("the vector store did not answer")


def exit_zero(question: Any, case: Any) -> dict[str, Any]:
    sys.exit(0)


def wait_for_release(question: Any, case: Any) -> dict[str, Any]:
    RELEASE.wait(10)
    return {"answer": "too late"}


def slow_if_asked(question: Any, case: Any) -> dict[str, Any]:
    if question == "slow":
        RELEASE.wait(10)
    return answer(question, case)


def not_an_object(question: Any, case: Any) -> list[str]:
    return ["an", "answer"]


def retrieved_not_a_list(question: Any, case: Any) -> dict[str, Any]:
    return {"answer": "x", "retrieved": "doc-1"}


class Chain:
    def invoke(self, question: Any, case: Any) -> dict[str, Any]:
        return {"answer": f"chain: {question}"}


chain = Chain()
NOT_CALLABLE = {"answer": "a constant"}
