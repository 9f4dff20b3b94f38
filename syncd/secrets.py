"""Reading secrets from files, environment variables and systemd credentials.

A secret file that group or others can read is refused: a password in a world-readable
file is already leaked, and saying so is kinder than working with it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from syncd.model.errors import SourceConfigError
from syncd.model.settings import SecretSource


class SecretError(SourceConfigError):
    """A secret that is missing or unsafe; the message names where it was looked for.

    An admin has to act (create the file, fix its mode), so for a source it is a config
    error: reported in `syncd status` with this message, retried slowly, never a traceback."""


def _read_file(path: Path, what: str) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretError(f"{what}: cannot read secret file {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"{what}: secret file {path} is readable by group or others "
            f"(mode {stat.filemode(info.st_mode)}); run: chmod 600 {path}"
        )
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"{what}: cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{what}: secret file {path} is not UTF-8 text") from None


def read_secret(source: SecretSource, what: str) -> str:
    if source.file is not None:
        return _read_file(Path(source.file), what)
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise SecretError(f"{what}: environment variable {source.env} is not set")
        return value.strip()
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError(
            f"{what}: credential {source.credential!r} asked for, but $CREDENTIALS_DIRECTORY is not set "
            "(use LoadCredential= in the unit)"
        )
    # systemd makes credential files 0400 owned by the service user; the mode check holds.
    return _read_file(Path(directory) / str(source.credential), what)
