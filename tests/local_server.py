"""The local HTTP servers the tests talk to (a pipeline, GitHub, an OpenAI-compatible API)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LocalServer:
    """A threaded HTTP server on a free port of 127.0.0.1, serving inside a ``with`` block.

    After a block that raised nothing, ``verify`` runs: a fake checks there what it saw.
    """

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.port = server.server_address[1]
        # A short poll: shutdown() waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        if kind is None:
            self.verify()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def verify(self) -> None:
        """Fail the test when the requests broke the rules this server checks (none here)."""
