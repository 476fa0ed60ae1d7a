"""Turning settings into a running host: refusals, keys, plugins, context."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path

from weaver.host import Host
from weaver.plugins import build_plugin_manager
from weaver.secrets import SecretBox
from weaver.settings import Settings

log = logging.getLogger(__name__)

GENERATED_KEY_FILE = "encryption.key"


class ConfigurationError(RuntimeError):
    """The settings may not be served (production refusals, unreadable key file)."""


def encryption_key(settings: Settings) -> str:
    """The configured key or, outside production, one generated once and kept in the data
    directory so that a restart can still open what was sealed before."""
    if settings.encryption_key:
        return settings.encryption_key
    if settings.is_production:
        raise ConfigurationError("ENCRYPTION_KEY is not set")
    path: Path = settings.data_dir / GENERATED_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two workers starting together must end up with the same key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if not key:
            raise ConfigurationError(f"{path} is empty; remove it or set ENCRYPTION_KEY") from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "ENCRYPTION_KEY is not set: generated one in %s; set ENCRYPTION_KEY before production",
        path,
    )
    return key


def build_host(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    discovered: Iterable[EntryPoint] | None = None,
) -> Host:
    """Everything the gateway needs before it serves; raises `ConfigurationError` for a
    configuration production must refuse."""
    problems = settings.production_problems(neo4j_enabled=settings.metadata_external_mode)
    if problems:
        raise ConfigurationError("refusing to start in production: " + "; ".join(problems))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    box = SecretBox(encryption_key(settings), settings.encryption_key_previous)
    pm, plugins = build_plugin_manager(settings, environ=environ, discovered=discovered)
    return Host(pm, settings, box, plugins)
