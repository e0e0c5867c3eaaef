"""A command pipeline that talks: a banner and a JSON log line at start-up, a log line per case.

Replies carry the case's id, as the protocol asks. Inputs that misbehave on purpose:

- ``other-id``: answers for another case;
- ``{"grandchild": PATH}``: starts a long sleep that inherits stdout, writes its pid to PATH,
  then hangs.
"""

import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    print("chatty 1.0 — loading model...", flush=True)
    print(json.dumps({"level": "info", "msg": "model loaded"}), flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        what = case["input"]
        print(json.dumps({"level": "debug", "msg": f"got {case['id']}"}), flush=True)
        if what == "other-id":
            print(json.dumps({"id": "someone-else", "answer": "not yours"}), flush=True)
        elif isinstance(what, dict) and "grandchild" in what:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            Path(what["grandchild"]).write_text(str(child.pid))
            time.sleep(600)
        else:
            print(json.dumps({"id": case["id"], "answer": f"echo: {what}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
