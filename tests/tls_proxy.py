"""TLS in front of the Temporal dev server (whose `start-dev` has no TLS flags), for tests/test_temporal_tls.py.

`pki(dir)` makes a CA, server and client certificates with the `openssl` CLI (Debian). `TlsProxy` terminates TLS
(optionally requiring a client certificate the CA signed: mTLS) and forwards the bytes to the dev server's gRPC
port. It decodes the HTTP/2 request headers it forwards (HPACK, with Debian's python3-hpack), so a test can see
the metadata the SDK really sent, such as `authorization: Bearer …`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tests import debian

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, CONTINUATION = 0x1, 0x9
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20


def _openssl(*args: str, cwd: Path) -> None:
    openssl = debian.ensure("openssl", ["openssl"])
    done = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr[-1000:]}")


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=incidentflow test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d: Path, name: str, ca: str, extensions: str) -> None:
    (d / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def pki(d: Path) -> Path:
    """ca.pem/.key; server.pem/.key (localhost, 127.0.0.1); named.pem/.key (only temporal.internal);
    client.pem/.key (clientAuth, signed by ca); other-ca.pem, and stranger.pem/.key signed by it."""
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _ca(d, "other-ca")
    server = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    _leaf(d, "server", "ca", server + "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _leaf(d, "named", "ca", server + "subjectAltName=DNS:temporal.internal\n")
    client = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    _leaf(d, "client", "ca", client)
    _leaf(d, "stranger", "other-ca", client)
    return d


def hpack() -> ModuleType:
    """The hpack package: installed, or Debian's python3-hpack loaded from its directory (pure Python). Its
    debug log would print every header it decodes (an API key too) into the tests' captured logs: quiet."""
    logging.getLogger("hpack").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        import hpack as found  # type: ignore[import-not-found]

        return found  # type: ignore[no-any-return]
    base = Path("/usr/lib/python3/dist-packages/hpack")
    if not (base / "__init__.py").exists():
        debian.apt_install("python3-hpack", "the hpack module (HTTP/2 header decoding) is missing")
    spec = importlib.util.spec_from_file_location("hpack", base / "__init__.py", submodule_search_locations=[str(base)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hpack"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class TlsProxy:
    upstream: str  # host:port of the dev server
    certs: Path
    server_cert: str = "server"
    mtls: bool = False
    port: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)  # decoded request headers, in order
    clients: list[str] = field(default_factory=list)  # the subject of each client certificate presented
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certs / f"{self.server_cert}.pem", self.certs / f"{self.server_cert}.key")
        ctx.set_alpn_protocols(["h2"])
        if self.mtls:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.certs / "ca.pem")
        return ctx

    async def __aenter__(self) -> TlsProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context(),
                                                  ssl_handshake_timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # ends the pumps, and with them each connection's task
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._writers.append(writer)
        peer = writer.get_extra_info("peercert")
        if peer:
            self.clients.append(dict(x[0] for x in peer["subject"]).get("commonName", "?"))
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)
        try:
            await asyncio.gather(self._pump(reader, up_writer, tap=_HeaderTap(self.requests)),
                                 self._pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tap: _HeaderTap | None = None) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            while data := await reader.read(65536):
                if tap is not None:
                    tap.feed(data)
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()


class _HeaderTap:
    """Reads the client's HTTP/2 frames as they pass and decodes each request's header block."""

    def __init__(self, out: list[dict[str, str]]) -> None:
        self.out = out
        self.buffer = b""
        self.preface = False
        self.block = b""
        self.decoder = hpack().Decoder()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.preface:
            if len(self.buffer) < len(PREFACE):
                return
            assert self.buffer.startswith(PREFACE), "not HTTP/2 prior knowledge"
            self.buffer, self.preface = self.buffer[len(PREFACE):], True
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            kind, flags, payload = self.buffer[3], self.buffer[4], self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            if kind == HEADERS:
                pad = payload[0] if flags & PADDED else 0
                payload = payload[(1 if flags & PADDED else 0) + (5 if flags & PRIORITY else 0):len(payload) - pad]
                self.block = payload
            elif kind == CONTINUATION:
                self.block += payload
            else:
                continue
            if flags & END_HEADERS:
                headers = self.decoder.decode(self.block)
                self.out.append({str(k): str(v) for k, v in headers})
                self.block = b""
