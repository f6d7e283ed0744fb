"""Who runs a CLI command, and which config says who is known.

The actor is `--by`, else INCIDENTFLOW_USER, else the OS user. A write is refused (exit 1) when the config
lists people and the actor is none of them (unless `slack.allow_everyone`), with the way to fix it.
The config is INCIDENTFLOW_CONFIG, else ./config/example.yaml when present: the one `incidentflow dev`
(`make run`) serves, so the CLI beside it knows the same people and services.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from domain import known
from domain.config import IncidentflowConfig, Settings, load_config
from incidentflow.client import InvalidInput

EXAMPLE_CONFIG = Path("config/example.yaml")


def cli_config(settings: Settings) -> IncidentflowConfig:
    """The config the CLI reads (and sets `settings.config` to it, so messages can name the file)."""
    if settings.config is None and EXAMPLE_CONFIG.exists():
        settings.config = EXAMPLE_CONFIG
    return load_config(settings.config)


def _os_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


def actor(args: argparse.Namespace, settings: Settings) -> str:
    """Who the command is done as, unchecked."""
    return str(getattr(args, "by", None) or settings.user or _os_user())


def acting(args: argparse.Namespace, settings: Settings, config: IncidentflowConfig) -> str:
    """The actor as a config person id; InvalidInput saying how to set it when the config does not know it."""
    name = actor(args, settings)
    if known.actor_problem(config, "by", name) is None:
        return known.person_id(config, name) or name
    if getattr(args, "by", None):
        source, fix = "--by", "give --by one of them"
    elif settings.user:
        source, fix = "INCIDENTFLOW_USER", "set INCIDENTFLOW_USER to your id among them (or pass --by)"
    else:
        source, fix = "your OS user", "set INCIDENTFLOW_USER to your id among them (or pass --by)"
    where = f" in {settings.config}" if settings.config else ""
    raise InvalidInput([f"by: {name!r} ({source}) is not one of incidentflow's people{where} "
                        f"(known: {known.listing(known.people(config))}): {fix}"])
