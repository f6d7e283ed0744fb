"""How a process reaches a Temporal cluster or Temporal Cloud: TLS from PEM files and the API key, from Settings.

`incidentflow.client_base.connect` is the only caller: the CLI, the API, the worker and the dev stack all connect
through it. A file that is missing, unreadable or not PEM is a `TemporalUnavailable` naming its environment
variable; no message or log line ever carries key material or the API key.
"""

from __future__ import annotations

import re
from pathlib import Path

from temporalio.service import TLSConfig

from domain.settings import Settings

ENV = "INCIDENTFLOW_TEMPORAL_"
# How the Rust core words a TLS connection the server ended (a refused client certificate, or none given)
_CLOSED = ("alertreceived", "close_notify", "broken pipe", "connection closed", "connection reset",
           "certificaterequired", "badcertificate", "unknownca",
           "transport error")  # how a refused handshake surfaces when the reset arrives after the connect


def _pem(path: Path, env: str, marker: str) -> bytes:
    """The file's bytes; a clear error (naming `env`, never quoting the contents) when it is not a PEM `marker`."""
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"{ENV}{env}: cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
    if b"-----BEGIN " not in data or marker.encode() not in data:
        raise ValueError(f"{ENV}{env}: {path} is not a PEM {marker.lower() or 'file'} "
                         f"(expected a '-----BEGIN …{marker}-----' block)")
    return data


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What `Client.connect(tls=…)` takes: False (plaintext), True (TLS, the system roots, no client
    certificate) or a TLSConfig built from the files. Raises ValueError naming the variable at fault."""
    if not settings.temporal_tls_enabled:
        return False
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if not (ca or cert or settings.temporal_tls_server_name):
        return True
    return TLSConfig(
        server_root_ca_cert=_pem(ca, "TLS_CA", "CERTIFICATE") if ca else None,
        client_cert=_pem(cert, "TLS_CERT", "CERTIFICATE") if cert else None,
        client_private_key=_pem(key, "TLS_KEY", "PRIVATE KEY") if key else None,
        domain=settings.temporal_tls_server_name or None,
    )


def api_key(settings: Settings) -> str | None:
    key = settings.temporal_api_key.get_secret_value().strip() if settings.temporal_api_key else ""
    return key or None


def describe(settings: Settings) -> str:
    """How we connect, for error messages: the transport and which files, never their contents."""
    if not settings.temporal_tls_enabled:
        return "plaintext" + (", API key" if api_key(settings) else "")
    parts = [f"CA {settings.temporal_tls_ca}" if settings.temporal_tls_ca else "system CAs"]
    if settings.temporal_tls_cert:
        parts.append(f"client cert {settings.temporal_tls_cert}")
    if settings.temporal_tls_server_name:
        parts.append(f"server name {settings.temporal_tls_server_name}")
    if api_key(settings):
        parts.append("API key")
    return "TLS: " + ", ".join(parts)


def explain(settings: Settings, error: str, short: str) -> str:
    """A failed connect in words, and what to set: the core's TLS errors name Rust types, not our settings.
    `error` is the whole error text, `short` its first line (what other failures show)."""
    lowered = error.lower()
    refused = re.search(r"InvalidCertificate\((\w+)", error)
    if refused and refused.group(1).startswith("NotValidForName"):
        names = re.findall(r'Name\(\\?"([^"\\]+)', error.split("presented", 1)[-1])
        return (f"the server's certificate is for {', '.join(names) or 'another name'}, not "
                f"{settings.temporal_address.rsplit(':', 1)[0]}: set {ENV}TLS_SERVER_NAME to that name")
    if refused:
        kind = refused.group(1)
        signer = settings.temporal_tls_ca or "a CA this system trusts"
        if kind in ("UnknownIssuer", "BadSignature"):
            return f"the server's certificate is not signed by {signer} ({kind}): set {ENV}TLS_CA to the CA that signed it"
        return f"the server's certificate was refused ({kind}): check {ENV}TLS_CA and {ENV}TLS_SERVER_NAME"
    if settings.temporal_tls_enabled and any(w in lowered for w in _CLOSED):
        if settings.temporal_tls_cert:
            return (f"the server ended the TLS connection: it did not accept the client certificate "
                    f"{settings.temporal_tls_cert} ({ENV}TLS_CERT, {ENV}TLS_KEY) [{_detail(error)}]")
        return (f"the server ended the TLS connection: it may require a client certificate (mTLS): set "
                f"{ENV}TLS_CERT and {ENV}TLS_KEY [{_detail(error)}]")
    if not settings.temporal_tls_enabled and ("transport error" in lowered or any(w in lowered for w in _CLOSED)):
        return (f"{_detail(error)}; if the server expects TLS, set {ENV}TLS=true (and {ENV}TLS_CA, {ENV}TLS_CERT, "
                f"{ENV}TLS_KEY as it needs)")
    return f"{short}; set {ENV}ADDRESS or run `incidentflow dev`"


def _detail(error: str) -> str:
    """The innermost reason in a core error (`peer closed connection …`), short."""
    found = re.findall(r'error: "?([^"})]+)', error) or re.findall(r'message: "([^"]+)"', error)
    text = (found[-1] if found else error).strip()
    return text if len(text) <= 120 else text[:120].rsplit(" ", 1)[0] + " …"
