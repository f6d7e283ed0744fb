"""The public status page's own side effects: reading its config, and writing the page as static files.

The files (HTML, Atom, Statuspage JSON) go to a directory any static host can serve, so the page stays up when
the systems it reports on (and ours) are down. Each file is replaced atomically; `version.txt` is written
last, and a publish of a version the directory already has is skipped, so a retried activity is harmless and
an older run can never overwrite a newer page."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from temporalio import activity

from domain.statuspage.drafts import Draft, DraftContext, draft
from domain.statuspage.messages import PublishFiles
from domain.statuspage.models import StatusPageConfig
from domain.statuspage.render_html import static_files

VERSION_FILE = "version.txt"


def published_version(directory: Path) -> int:
    try:
        return int((directory / VERSION_FILE).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_page(directory: Path, request: PublishFiles) -> int:
    """Write every file of this version; returns the version now published."""
    have = published_version(directory)
    if have >= request.state.version and (directory / "index.html").exists():
        return have
    files = static_files(request.config, request.state, request.at)
    for name in sorted(files, key=lambda n: n == "index.html"):  # the front page last
        write_atomically(directory / name, files[name])
    write_atomically(directory / VERSION_FILE, f"{request.state.version}\n".encode())
    return request.state.version


class StatusPageActivities:
    def __init__(self, config: Callable[[], StatusPageConfig], data_dir: Path) -> None:
        self._config = config
        self._data_dir = data_dir

    def directory(self, config: StatusPageConfig) -> Path:
        return Path(config.publish_dir) if config.publish_dir else self._data_dir / "statuspage"

    @activity.defn
    async def load_statuspage_config(self) -> StatusPageConfig:
        return self._config()

    @activity.defn
    async def draft_public_update(self, request: DraftContext) -> Draft:
        """The public update an incident owes, from the config's templates (or the built-in ones)."""
        return draft(self._config(), request)

    @activity.defn
    async def publish_page(self, request: PublishFiles) -> int:
        return await asyncio.to_thread(write_page, self.directory(request.config), request)
