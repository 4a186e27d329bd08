"""The admin token's file: ``<state-dir>/admin-token`` unless ``--admin-token-file`` names
another; created on first start, mode 0600 from the moment it exists."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from dvr.server.auth import new_admin_token

log = logging.getLogger("dvr.server.auth")
ADMIN_TOKEN_FILE = "admin-token"


def admin_token_path(state_dir: Path) -> Path:
    """Where the server keeps its admin token by default (local tools read it there)."""
    return state_dir / ADMIN_TOKEN_FILE


def read_or_create_admin_token(path: Path, create: bool) -> str:
    """The admin token in ``path``; when ``create`` and the file is absent, a new one is
    written there first (mode 0600 from the start: never readable by others)."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(new_admin_token() + "\n")
        log.info("created the admin token in %s (mode 0600)", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the admin token file %s is readable by others (mode %03o): chmod 600", path, mode
        )
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"the admin token file {path} is empty")
    return token
