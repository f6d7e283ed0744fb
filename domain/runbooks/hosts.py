"""Where a runbook request may go: host patterns and the target (scheme, host, port) of a URL (pure).

A pattern is `[scheme://]host[:port]`:
  flags.internal            https://flags.internal on port 443 only
  flags.internal:8443       https on port 8443
  *.flags.example.com       https to any subdomain of flags.example.com (not flags.example.com itself)
  http://127.0.0.1:8080     plain http, only when the scheme is written out
Hosts compare in ASCII (write an internationalised name in its xn-- form), case-insensitively, with no
trailing dot. Both the runbook parameters of `type: url` (`allowed_hosts:`) and the worker's secrets
(INCIDENTFLOW_RUNBOOK_SECRETS `hosts`) are bound with these patterns.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, backslash: parsers disagree on them
PATTERN_HINT = ("use [scheme://]host[:port], e.g. flags.internal, *.flags.example.com, flags.internal:8443 "
                "or http://127.0.0.1:8080 (https unless http:// is written)")


def _host(text: str) -> str:
    """A host as compared: lowercase ASCII, no trailing dot, IPv6 without brackets."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_DNS.match(host)) and len(host) <= 253


@dataclass(frozen=True)
class Target:
    """Where a request connects: scheme, host and port (the scheme's default port when none is given)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, scheme: str, host: str, port: int | None) -> Target:
        scheme = scheme.lower()
        return cls(scheme, _host(host), port if port is not None else DEFAULT_PORTS.get(scheme, 0))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS.get(self.scheme) else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def url_target(url: str) -> Target:
    """The target of an http(s) URL; ValueError says what is wrong (scheme, user info, host, port)."""
    if _UNSAFE.search(url):
        raise ValueError(f"{url!r} contains whitespace, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError(f"{url!r} has user info (user@host): put credentials in headers, as ${{secret:NAME}}")
    host = _host(parts.hostname or "")
    if not host or not _valid_host(host):
        raise ValueError(f"{url!r} has no valid host")
    return Target.of(parts.scheme, host, port)


@dataclass(frozen=True)
class HostPattern:
    """One allowed destination: a scheme, an exact host or a `*.` wildcard over its subdomains, a port."""

    scheme: str
    host: str  # the exact host, or the parent domain of a wildcard
    wildcard: bool
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        rest, scheme = text.strip().lower(), "https"
        if "://" in rest:
            scheme, rest = rest.split("://", 1)
            if scheme not in DEFAULT_PORTS:
                raise ValueError(f"host pattern {text!r}: scheme must be https or http")
        rest = rest.removesuffix("/")
        if not rest or _UNSAFE.search(rest) or any(c in rest for c in "/?#@%"):
            raise ValueError(f"invalid host pattern {text!r}: {PATTERN_HINT}")
        wildcard = rest.startswith("*.")
        rest = rest.removeprefix("*.")
        host, port = rest, DEFAULT_PORTS[scheme]
        bracketed = rest.startswith("[")
        if (bracketed and "]:" in rest) or (not bracketed and rest.count(":") == 1):
            host, _, digits = rest.rpartition(":")
            if not digits.isdigit() or not 0 < int(digits) < 65536:
                raise ValueError(f"host pattern {text!r}: invalid port {digits!r}")
            port = int(digits)
        host = _host(host)
        if "*" in host:
            raise ValueError(f"host pattern {text!r}: only a leading '*.' wildcard is allowed ({PATTERN_HINT})")
        if not _valid_host(host) or (wildcard and not _DNS.match(host)):
            raise ValueError(f"invalid host pattern {text!r}: {PATTERN_HINT}")
        return cls(scheme, host, wildcard, port)

    def matches(self, target: Target) -> bool:
        if (target.scheme, target.port) != (self.scheme, self.port):
            return False
        return target.host.endswith("." + self.host) if self.wildcard else target.host == self.host

    def covers(self, other: HostPattern | Target) -> bool:
        """Every target `other` matches (or the target itself), this matches too."""
        if isinstance(other, Target):
            return self.matches(other)
        if other.wildcard:
            return (self.wildcard and (other.scheme, other.port) == (self.scheme, self.port)
                    and (other.host == self.host or other.host.endswith("." + self.host)))
        return self.matches(Target(other.scheme, other.host, other.port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        scheme = "" if self.scheme == "https" else f"{self.scheme}://"
        return f"{scheme}{'*.' if self.wildcard else ''}{host}{port}"


def parse_patterns(texts: Iterable[str]) -> list[HostPattern]:
    return [HostPattern.parse(t) for t in texts]


def allowed(target: Target, patterns: Iterable[HostPattern]) -> bool:
    return any(p.matches(target) for p in patterns)


def listed(patterns: Iterable[HostPattern]) -> str:
    return ", ".join(str(p) for p in patterns) or "none"


def pattern_for(target: Target) -> str:
    """The pattern that allows exactly this target (for 'how to allow it' hints)."""
    return str(HostPattern(target.scheme, target.host, False, target.port))


def refusal(secret: str, dest: Target | HostPattern, hosts: Iterable[HostPattern], via: str = "") -> str:
    """Why `secret` may not go to `dest` (a URL's target, or a host pattern a parameter allows), and how to
    allow it. Names the secret and the host, never the value."""
    hosts = list(hosts)
    allow = pattern_for(dest) if isinstance(dest, Target) else str(dest)
    where = f"{dest}{via}"
    if not hosts:
        return (f"secret {secret!r} is bound to no host, so it is never sent (refused for {where}): bind it in "
                f'INCIDENTFLOW_RUNBOOK_SECRETS as {{"{secret}": {{"value": "…", "hosts": ["{allow}"]}}}}')
    return (f"secret {secret!r} may not be sent to {where} (its hosts: {listed(hosts)}); to allow it, add "
            f'"{allow}" to its "hosts" in INCIDENTFLOW_RUNBOOK_SECRETS')
