"""Debian programs the tests use for real (Chromium, PostgreSQL, Alertmanager, Prometheus): found on PATH or in
their Debian location, else apt-installed when we are root (CI runs on a clean machine), idempotently."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable


def _find(names: Iterable[str], dirs: Iterable[str] = ()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in dirs:
            path = os.path.join(d, name)
            if os.access(path, os.X_OK):
                return path
    return None


def ensure(package: str, names: Iterable[str], dirs: Iterable[str] = ()) -> str:
    """The path of one of `names`; apt-installs `package` first when none is there."""
    names, dirs = list(names), list(dirs)
    found = _find(names, dirs)
    if found:
        return found
    apt_install(package, f"{' or '.join(names)} not found")
    found = _find(names, dirs)
    if not found:
        raise RuntimeError(f"`apt-get install {package}` did not provide {' or '.join(names)}")
    return found


def apt_install(package: str, why: str) -> None:
    """Install a Debian package (as root, with apt-get), or raise saying how to."""
    apt = shutil.which("apt-get")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (apt and is_root):
        raise RuntimeError(f"{why}; install it with `apt-get install -y {package}` "
                           f"(apt-get available: {bool(apt)}, root: {is_root})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", package]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # stale or missing package lists: refresh once, then retry
        subprocess.run([apt, "update"], env=env, capture_output=True, text=True, timeout=900)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(install)}` failed (exit {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-2000:]}")


def chromium() -> str:
    return ensure("chromium", ["chromium", "chromium-browser"])
