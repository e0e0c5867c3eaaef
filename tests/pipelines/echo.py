"""A long-lived JSON-lines pipeline for the command adapter's tests.

One case per line on stdin, one reply per line on stdout, carrying the case's id. The output echoes
the case and names this process, so a test can tell which process served it. Some inputs
misbehave on purpose:

- ``malformed``: logs a line that is not JSON, then answers with an output that is not an object;
- ``hang``: never answers;
- ``crash``: writes a reason to stderr and exits with code 3;
- ``answer-then-exit``: answers, then exits with code 0 (the next case finds the process gone).
"""

import json
import os
import sys
import time


def main() -> int:
    for line in sys.stdin:
        case = json.loads(line)
        what = case["input"]
        if what == "malformed":
            print("this is not JSON", flush=True)
            print(json.dumps({"id": case["id"], "answer": ["not", "text"]}), flush=True)
        elif what == "hang":
            time.sleep(3600)
        elif what == "crash":
            print("echo.py: fatal: the model file is corrupt", file=sys.stderr, flush=True)
            return 3
        else:
            output = {
                "id": case["id"],
                "answer": f"echo: {what}",
                "pid": os.getpid(),
                "keys": sorted(case),
            }
            print(json.dumps(output), flush=True)
            if what == "answer-then-exit":
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
