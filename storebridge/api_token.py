"""The API token `serve` and `worker` use: STOREBRIDGE_API_TOKEN, or one generated once and kept in a file.

Where the generated token is kept (`token_file`):

- SQLite: beside the database file, named after it (`./storebridge.db` -> `./storebridge.token`);
- PostgreSQL: `./storebridge.token` in the working directory (every host that runs a hub or a
  worker against the same database needs the same token: set STOREBRIDGE_API_TOKEN there);
- an in-memory SQLite database keeps nothing: a new token each run.

The file is created with mode 0600 and appears whole or not at all (written to a private temporary
file, then hard-linked into place, so two processes starting together agree on the first one).
STOREBRIDGE_API_TOKEN, when set, always wins and no file is read or written.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from storebridge.config import Settings

__all__ = ["ApiToken", "new_token", "resolve_api_token", "token_file"]

TOKEN_FILE_NAME = "storebridge.token"


@dataclass(frozen=True, slots=True)
class ApiToken:
    value: str
    source: str  # "environment" | "generated" (new; saved in `path` if any) | "file" (read from `path`)
    path: Path | None = None


def new_token() -> str:
    return "sbk_" + secrets.token_urlsafe(24)


def token_file(database_url: str) -> Path | None:
    """Where a generated token for this database is kept, or None (in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return Path.cwd() / TOKEN_FILE_NAME
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).expanduser().absolute()
    return path.with_name(path.stem + ".token")


def _read(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def _create(path: Path, value: str) -> str:
    """Write `value` to `path` (0600) unless another process got there first; the token in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a token another process saved meanwhile
        except FileExistsError:
            return _read(path) or value
    finally:
        tmp.unlink(missing_ok=True)
    return value


def resolve_api_token(settings: Settings) -> ApiToken:
    """STOREBRIDGE_API_TOKEN; else the saved token for this database; else a new one, saved."""
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return ApiToken(settings.api_token.get_secret_value(), "environment")
    path = token_file(settings.database_url)
    if path is None:
        return ApiToken(new_token(), "generated")
    saved = _read(path)
    if saved is not None:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # copied or restored with looser permissions: the token stays private
        return ApiToken(saved, "file", path)
    value = new_token()
    kept = _create(path, value)
    return ApiToken(kept, "generated" if kept == value else "file", path)
