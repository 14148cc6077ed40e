"""The stand-ins written in Python (GitLab's API, the registry token service): an HTTP server on
127.0.0.1 with a free port, served by a daemon thread, stopped with a bounded join."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

HANDLER_TIMEOUT = 10.0  # bounds every read and write of a connection
JOIN_TIMEOUT = 5.0


class LoopbackServer:
    """Mixin: `_handler()` names the request handler class; each server gets a subclass of it
    whose `owner` is this object. Subclasses declare `_server` and `_thread` (None when
    stopped)."""

    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        handler = type(
            f"{type(self).__name__}Handler",
            (self._handler(),),
            {"owner": self, "timeout": HANDLER_TIMEOUT},
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
