"""The lifecycle every loopback fake shares: a ThreadingHTTPServer served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class ThreadedServer:
    """Mixin: the class sets `self._httpd` (and `self._thread = None`) in its `__init__`."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread | None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; `shutdown()` would block forever on a server that never ran."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
