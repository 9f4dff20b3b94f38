"""Maildir and mbox sources: local mail stores and mail exports, read with ``mailbox``.

Both are listing connectors: every pass lists the keys, reads only messages the store
does not know, and reports keys that disappeared. Maildir keys are the unique part of
the file name (stable when a mail client moves a message from new/ to cur/ or changes
its flags), prefixed with the folder. mbox keys are content hashes, because mbox
positions shift when a message is removed. Nothing is ever written to the mail store.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.mailparse import parse_message
from syncd.model.errors import SourceUnavailable
from syncd.model.records import ActivityRecord, Batch, Problem, ReadOptions, SourceState
from syncd.model.settings import ConfigPath, InputPath, MailSourceSettings

INBOX = "INBOX"


class _BatchBuilder:
    """Groups records and problems into batches of the configured size."""

    def __init__(self, size: int, folder: str = ""):
        self.size = size
        self.folder = folder
        self.records: list[ActivityRecord] = []
        self.problems: list[Problem] = []

    def add(self, item: ActivityRecord | Problem) -> Batch | None:
        (self.records if isinstance(item, ActivityRecord) else self.problems).append(item)  # type: ignore[arg-type]
        if len(self.records) + len(self.problems) >= self.size:
            return self.flush()
        return None

    def flush(self) -> Batch | None:
        if not self.records and not self.problems:
            return None
        batch = Batch(records=tuple(self.records), problems=tuple(self.problems), folder=self.folder)
        self.records, self.problems = [], []
        return batch


class MaildirConnector(Connector):
    kind = "maildir"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        *,
        path: Path,
        owner: str,
        owner_addresses: frozenset[str],
        include_subfolders: bool = True,
    ):
        super().__init__(name, options)
        self.path = Path(path)
        self.owner = owner
        self.owner_addresses = owner_addresses | {owner}
        self.include_subfolders = include_subfolders

    def _folders(self) -> list[tuple[str, mailbox.Maildir]]:
        if not (self.path / "cur").is_dir() and not (self.path / "new").is_dir():
            raise SourceUnavailable(f"{self.path} is not a Maildir (no cur/ or new/)")
        root = mailbox.Maildir(str(self.path), factory=None, create=False)
        folders = [(INBOX, root)]
        if self.include_subfolders:
            for name in sorted(root.list_folders()):
                folders.append((name, root.get_folder(name)))
        return folders

    def read(self, state: SourceState) -> Iterator[Batch]:
        try:
            folders = self._folders()
            listing = [(folder, box, sorted(box.keys(), reverse=True)) for folder, box in folders]
        except OSError as exc:
            raise SourceUnavailable(f"cannot list Maildir {self.path}: {exc.strerror or exc}") from None
        # Keys start with the delivery time, so reverse order reads newest mail first.
        listed = {f"{folder}/{k}" for folder, _box, keys in listing for k in keys}
        pending = len(listed - state.known.keys())
        builder = _BatchBuilder(self.options.batch_size)
        for folder, box, keys in listing:
            for box_key in keys:
                key = f"{folder}/{box_key}"
                if key in state.known:
                    continue
                item = self._read_one(box, box_key, key, folder)
                pending -= 1
                if item is None:
                    listed.discard(key)  # vanished between listing and reading: not ours to report
                    continue
                batch = builder.add(item)
                if batch:
                    yield replace(batch, pending=pending)
        batch = builder.flush()
        if batch:
            yield replace(batch, pending=0)
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed), pending=0)

    def _read_one(self, box: mailbox.Maildir, box_key: str, key: str, folder: str) -> ActivityRecord | Problem | None:
        try:
            raw = box.get_bytes(box_key)
        except KeyError:
            return None
        except OSError as exc:
            return Problem(key, f"cannot read message file: {exc.strerror or exc}", f"{self.path} {key}")

        def delivery_date() -> datetime | None:
            try:
                return datetime.fromtimestamp(box.get_message(box_key).get_date(), tz=timezone.utc)
            except (KeyError, OSError, ValueError):
                return None

        return parse_message(
            raw,
            key=key,
            mailbox=self.owner,
            folder=folder,
            owner_addresses=self.owner_addresses,
            snippet_chars=self.options.snippet_chars,
            keep_body=self.options.keep_bodies,
            fallback_date=delivery_date,
            where=f"{self.path} {key}",
        )


class MboxConnector(Connector):
    kind = "mbox"

    def __init__(self, name: str, options: ReadOptions, *, path: Path, owner: str, owner_addresses: frozenset[str]):
        super().__init__(name, options)
        self.path = Path(path)
        self.owner = owner
        self.owner_addresses = owner_addresses | {owner}

    def read(self, state: SourceState) -> Iterator[Batch]:
        if not self.path.is_file():
            raise SourceUnavailable(f"no such mbox file: {self.path}")
        try:
            box = mailbox.mbox(str(self.path), factory=None, create=False)
            messages = list(box.iteritems())
        except (OSError, mailbox.Error) as exc:
            raise SourceUnavailable(f"cannot read mbox {self.path}: {exc}") from None
        listed: set[str] = set()
        builder = _BatchBuilder(self.options.batch_size)
        for number, (_key, message) in enumerate(messages, start=1):
            raw = message.as_bytes()
            key = "mbox/" + hashlib.sha256(raw).hexdigest()[:32]
            if key in listed:
                continue  # the very same bytes twice in one export
            listed.add(key)
            if key in state.known:
                continue
            from_line = message.get_from()

            def envelope_date(line: str = from_line) -> datetime | None:
                parts = line.split(None, 1)
                try:
                    parsed = parsedate_to_datetime(parts[1]) if len(parts) == 2 else None
                except (TypeError, ValueError):
                    return None
                return parsed.replace(tzinfo=parsed.tzinfo or timezone.utc) if parsed else None

            item = parse_message(
                raw,
                key=key,
                mailbox=self.owner,
                folder=self.path.name,
                owner_addresses=self.owner_addresses,
                snippet_chars=self.options.snippet_chars,
                keep_body=self.options.keep_bodies,
                fallback_date=envelope_date,
                where=f"{self.path} message {number}",
            )
            batch = builder.add(item)
            if batch:
                yield batch
        batch = builder.flush()
        if batch:
            yield batch
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed))


class MaildirSettings(MailSourceSettings):
    """A Maildir (or Maildir++ tree with subfolders) read from disk."""

    kind: Literal["maildir"]
    path: ConfigPath = Field(description="The Maildir folder (holding cur/ new/ tmp/).")
    include_subfolders: bool = Field(default=True, description="Read Maildir++ subfolders (.Sent, .Archive...).")

    def input_paths(self) -> tuple[InputPath, ...]:
        return (InputPath("path", self.path, folder=True),)


class MboxSettings(MailSourceSettings):
    """An mbox file, such as a mail export."""

    kind: Literal["mbox"]
    path: ConfigPath = Field(description="The mbox file.")

    def input_paths(self) -> tuple[InputPath, ...]:
        return (InputPath("path", self.path),)


def _check_maildir(settings: MaildirSettings) -> list[tuple[str, str]]:
    path = settings.path
    if path.is_dir() and not (path / "cur").is_dir() and not (path / "new").is_dir():
        return [("path", f"{path} is not a Maildir (no cur/ or new/ inside)")]
    return []


def _build_maildir(settings: MaildirSettings, context: ConnectorContext) -> MaildirConnector:
    return MaildirConnector(
        settings.name,
        context.options,
        path=settings.path,
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses),
        include_subfolders=settings.include_subfolders,
    )


def _build_mbox(settings: MboxSettings, context: ConnectorContext) -> MboxConnector:
    return MboxConnector(
        settings.name,
        context.options,
        path=settings.path,
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses),
    )


MAILDIR = SourceKind(
    name="maildir",
    settings=MaildirSettings,
    build=_build_maildir,
    check=_check_maildir,
    summary="A Maildir on disk (Dovecot, Postfix, mbsync).",
    capabilities=Capabilities(mail=True),
)
MBOX = SourceKind(
    name="mbox",
    settings=MboxSettings,
    build=_build_mbox,
    summary="An mbox file, such as a mail export.",
    capabilities=Capabilities(mail=True),
)
