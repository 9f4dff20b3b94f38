"""A new kind of source through the registry alone: validated, documented and synced.

The example kind below (``notes_file``: a text file of "date; address; subject" lines, as
a sales assistant might keep) is one module's worth of code: settings, connector,
factory. Registered with ``Registry.with_kind``, nothing else of syncd changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from syncd.config import ConfigError, parse_config
from syncd.configdoc import render
from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.registry import BUILTIN_KINDS, Registry
from syncd.model.errors import SourceUnavailable
from syncd.model.records import (
    ActivityKind,
    ActivityRecord,
    Batch,
    Participant,
    Problem,
    ReadOptions,
    Role,
    SourceState,
)
from syncd.model.settings import ConfigPath, InputPath, MailSourceSettings
from syncd.pipeline import Pipeline
from syncd.store import Store


class NotesFileSettings(MailSourceSettings):
    """A text file of call notes, one per line: `2026-11-02; ana@customer.example; Called about the offer`."""

    kind: Literal["notes_file"]
    path: ConfigPath = Field(description="The notes file.")

    def input_paths(self) -> tuple[InputPath, ...]:
        return (InputPath("path", self.path),)


class NotesFileConnector(Connector):
    kind = "notes_file"

    def __init__(self, name: str, options: ReadOptions, path: Path, owner: str):
        super().__init__(name, options)
        self.path = path
        self.owner = owner

    def read(self, state: SourceState) -> Iterator[Batch]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {self.path}: {exc.strerror}", source=self.name) from None
        listed: set[str] = set()
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            key = "line:" + hashlib.sha256(line.encode()).hexdigest()[:16]
            listed.add(key)
            if key in state.known:
                continue
            try:
                day, address, subject = (part.strip() for part in line.split(";", 2))
                when = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
            except ValueError:
                problems.append(Problem(key, "not 'date; address; subject'", f"{self.path} line {number}"))
                continue
            records.append(
                ActivityRecord(
                    key=key,
                    kind=ActivityKind.CALL,
                    occurred_at=when,
                    subject=subject,
                    mailbox=self.owner,
                    participants=(Participant(address.lower(), "", Role.TO),),
                )
            )
        yield Batch(records=tuple(records), problems=tuple(problems))
        yield Batch(removed=tuple(k for k in state.known if k not in listed), listing_complete=True, listed=len(listed))


def _build(settings: NotesFileSettings, context: ConnectorContext) -> NotesFileConnector:
    return NotesFileConnector(settings.name, context.options, settings.path, settings.owner)


NOTES_FILE = SourceKind(
    name="notes_file",
    settings=NotesFileSettings,
    build=_build,
    summary="Call notes kept as lines of a text file.",
    capabilities=Capabilities(rows=True),
)

CONFIG = """
[service]
state_dir = "state"
[matching]
internal_domains = ["ourco.example"]
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
email = "Email"
[[sources]]
name = "calls"
kind = "notes_file"
path = "calls.txt"
owner = "alice@ourco.example"
"""


def _workbook(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Company", "Email"])
    book.active.append(["Adriatic Foods", "ivana@adriaticfoods.hr"])
    book.save(path)


def test_a_kind_added_through_the_registry_is_validated_documented_and_synced(tmp_path: Path) -> None:
    kinds = Registry.builtin().with_kind(NOTES_FILE)
    _workbook(tmp_path / "customers.xlsx")
    (tmp_path / "calls.txt").write_text(
        "2026-11-02; ivana@adriaticfoods.hr; Called about the offer\nnot a note\n", encoding="utf-8"
    )
    # Validated: its keys like every other kind's, with the same errors.
    with pytest.raises(ConfigError) as error:
        parse_config(CONFIG.replace('path = "calls.txt"', 'pathh = "calls.txt"'), tmp_path / "syncd.toml", kinds=kinds)
    assert "sources[1] (calls).pathh: unknown key (did you mean 'path'?)" in error.value.render()
    with pytest.raises(ConfigError) as missing:
        parse_config(CONFIG.replace("calls.txt", "nowhere.txt"), tmp_path / "syncd.toml", check_files=True, kinds=kinds)
    assert "sources[1] (calls).path: no such file" in missing.value.render()
    config = parse_config(CONFIG, tmp_path / "syncd.toml", check_files=True, kinds=kinds)
    # Documented: a section of the configuration reference, from its settings model.
    doc = render(kinds)
    assert '## [[sources]] with kind = "notes_file"' in doc
    assert "Call notes kept as lines of a text file. Capabilities: rows." in doc
    assert "| `path` | path | **required** | The notes file. |" in doc
    # Synced: through the real pipeline and store, matched to the customer.
    store = Store.open(config.store_url)
    try:
        result = Pipeline(config, store).run_pass()
        assert result.ok, [s.error for s in result.sources]
        calls = next(s for s in result.sources if s.name == "calls")
        assert (calls.new, calls.quarantined) == (1, 1)
        [activity] = [a for a in store.reads.activities() if a.kind == "call"]
        assert [c.name for c in activity.customers] == ["Adriatic Foods"]
        assert (tmp_path / "timeline.xlsx").is_file()
    finally:
        store.close()


def test_the_builtin_registry_does_not_know_it() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(CONFIG, Path("/nonexistent/syncd.toml"))
    text = error.value.render()
    assert "sources[1] (calls).kind: unknown source kind" in text
    assert all(name in text for name, _path in BUILTIN_KINDS)


def test_a_kind_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Registry.builtin().with_kind(NOTES_FILE).with_kind(NOTES_FILE)
