"""Staff workbooks kept in OneDrive or SharePoint, read as customer lists or activity sheets.

The ``drive_customers`` and ``drive_activities`` kinds take the same mapping as
``excel_customers`` and ``excel_activities`` (columns, sheet, header finding, key columns,
date formats) plus where the workbook is: a drive (a user's OneDrive, or a SharePoint
site's library) and a ``path`` to one workbook or a ``folder`` of them. A workbook is
downloaded only when its ``cTag`` (content tag) changed, whole, into the state folder, and
then read by the local kind's own connector: the same records, header finding and error
messages, with the drive path named instead of the cache file. A folder is followed with
``root/delta``: a renamed workbook keeps its item id (nothing changes), a deleted one
takes its rows out (through the removal guard, like any source). A locked or checked-out
workbook is retried next pass, never half-read.

Keys are ``<item id>:<the local kind's key>``, so two workbooks in a folder never share one.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.cursor import JsonCursor
from syncd.connectors.excel_activities import ExcelActivitiesConnector, ExcelActivitiesSettings, activity_sheet
from syncd.connectors.excel_customers import CustomerColumns, ExcelCustomersConnector, ExcelCustomersSettings
from syncd.connectors.graph.client import DeltaExpired
from syncd.connectors.graph.drive import Drive, DriveError, DriveItem, DriveLocked
from syncd.connectors.graph.kind import GraphAccountFields, graph_client
from syncd.model.errors import SourceConfigError, SourceError, SourceUnavailable
from syncd.model.records import Batch, Problem, ReadOptions, SourceState
from syncd.model.settings import InputPath

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
DELTA_LABEL = "@delta"


@dataclasses.dataclass
class FileCursor(JsonCursor):
    ctag: str
    digest: str | None = None


@dataclasses.dataclass
class DeltaLink(JsonCursor):
    """Where the drive's delta stands, and which items are the followed folder's: Microsoft
    says delta items carry no path ("always track items by id"), so membership is kept by
    id, from the folder down."""

    link: str
    folders: list[str] = dataclasses.field(default_factory=list)  # the folder and its subfolders
    files: list[str] = dataclasses.field(default_factory=list)  # workbooks read from them


class DriveLocationFields(GraphAccountFields):
    """Where the workbooks are: a OneDrive or a SharePoint library, and a file or a folder in it."""

    user: str | None = Field(default=None, description="The workbook is in this user's OneDrive (UPN or address).")
    site: str | None = Field(
        default=None,
        description='Or in a SharePoint site, as "host:/sites/Name" (e.g. contoso.sharepoint.com:/sites/Sales).',
    )
    library: str | None = Field(default=None, description="The site's document library by name (default: Documents).")
    path: str | None = Field(
        default=None, description='The workbook\'s path in the drive, e.g. "Sales/Customers.xlsx".'
    )
    folder: str | None = Field(default=None, description="Or a folder: every workbook in it (and below) is read.")

    @model_validator(mode="after")
    def _where(self) -> DriveLocationFields:
        if bool(self.user) == bool(self.site):
            raise ValueError("give exactly one of user (a OneDrive) or site (a SharePoint site)")
        if bool(self.path) == bool(self.folder):
            raise ValueError("give exactly one of path (one workbook) or folder (every workbook in it)")
        return self

    def input_paths(self) -> tuple[InputPath, ...]:
        return ()  # nothing local: the output-is-never-a-source check has nothing to compare

    def watched_files(self) -> tuple[Path, ...]:
        return ()


class DriveCustomersSettings(DriveLocationFields, ExcelCustomersSettings):
    """A customer list in a workbook on OneDrive or SharePoint: the excel_customers mapping."""

    kind: Literal["drive_customers"]  # type: ignore[assignment]


class DriveActivitiesSettings(DriveLocationFields, ExcelActivitiesSettings):
    """Orders, calls or notes in a workbook on OneDrive or SharePoint: the excel_activities mapping."""

    kind: Literal["drive_activities"]  # type: ignore[assignment]


class DriveWorkbooksConnector(Connector):
    """Downloads changed workbooks and reads each with the local kind's connector."""

    kind = "drive_workbooks"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        *,
        drive: Callable[[], Drive],
        path: str | None,
        folder: str | None,
        cache_dir: Path,
        reader: Callable[[Path], Connector],
        close: Callable[[], None] = lambda: None,
    ):
        super().__init__(name, options)
        self.drive_factory = drive
        self.path = path
        self.folder = folder
        self.cache_dir = cache_dir
        self.reader = reader
        self._close = close

    def close(self) -> None:
        self._close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        try:
            drive = self.drive_factory()
            if self.path:
                item = drive.item(self.path)
                if item is None:
                    raise SourceConfigError(f"source {self.name}: no workbook {self.path!r} in the drive")
                yield from self._workbook(drive, item, state)
                return
            yield from self._folder(drive, state)
        except DriveLocked as exc:
            raise SourceUnavailable(str(exc), source=self.name) from None
        except DeltaExpired as exc:
            raise SourceUnavailable(f"source {self.name}: {exc}", source=self.name) from None
        except DriveError as exc:
            raise SourceUnavailable(f"source {self.name}: {exc}", source=self.name) from None

    def _folder(self, drive: Drive, state: SourceState) -> Iterator[Batch]:
        """The followed folder's workbooks that changed, from the drive's delta, by item id."""
        top = drive.item(self.folder or "")
        if top is None or not top.is_folder:
            raise SourceConfigError(f"source {self.name}: no folder {self.folder!r} in the drive")
        cursor = DeltaLink.load(state.cursors.get(DELTA_LABEL))
        folders = set(cursor.folders) if cursor else set()
        files = set(cursor.files) if cursor else set()
        folders.add(top.id)
        full = cursor is None
        try:
            changes, next_link = drive.changes(cursor.link if cursor else None)
        except DeltaExpired:
            full = True  # the link expired (410 resyncRequired): list everything, remove what is gone
            changes, next_link = drive.changes(None)
        if full:
            folders = {top.id}
        # Folders first, until no more join: a subfolder's parent may come after it.
        grew = True
        while grew:
            grew = False
            for item in changes:
                if item.is_folder and not item.deleted and item.parent_id in folders and item.id not in folders:
                    folders.add(item.id)
                    grew = True
        seen: set[str] = set()
        gone: set[str] = set()
        for item in changes:
            if item.is_folder:
                if item.deleted:
                    folders.discard(item.id)
                continue
            inside = not item.deleted and item.parent_id in folders and item.name.lower().endswith(WORKBOOK_SUFFIXES)
            if inside:
                seen.add(item.id)
                full_item = drive.item_by_id(item.id)
                if full_item is None:
                    gone.add(item.id)
                    continue
                files.add(item.id)
                yield from self._workbook(drive, full_item, state)
            elif item.id in files:
                gone.add(item.id)  # deleted, moved out of the folder, or renamed to a non-workbook
        if full:
            gone |= files - seen
        for item_id in sorted(gone):
            files.discard(item_id)
            prefix = f"{item_id}:"
            removed = tuple(sorted(k for k in state.known if k.startswith(prefix)))
            if removed:
                yield Batch(removed=removed, folder=item_id)
        yield Batch(folder=DELTA_LABEL, cursor=DeltaLink(next_link, sorted(folders), sorted(files)).dump())

    def _workbook(self, drive: Drive, item: DriveItem, state: SourceState) -> Iterator[Batch]:
        cursor = FileCursor.load(state.cursors.get(item.id))
        if cursor is not None and item.ctag and cursor.ctag == item.ctag:
            return  # content unchanged (a rename changes the eTag, not the cTag): nothing downloaded
        local = self._download(drive, item)
        prefix = f"{item.id}:"
        inner_state = SourceState(
            cursors={"": cursor.digest} if cursor is not None and cursor.digest else {},
            known={k[len(prefix) :]: v for k, v in state.known.items() if k.startswith(prefix)},
        )
        digest = cursor.digest if cursor is not None else None
        named = f"{item.path} (in the drive)"
        try:
            batches = list(self.reader(local).read(inner_state))
        except SourceError as exc:
            # The local kind's error, naming the workbook as staff know it, not the cache file.
            exc.message = exc.message.replace(str(local), named).replace(local.name, named)
            exc.args = (exc.message,)
            raise
        for batch in batches:
            if batch.cursor is not None:
                digest = batch.cursor
            yield Batch(
                records=tuple(dataclasses.replace(r, key=prefix + r.key) for r in batch.records),
                problems=tuple(_named(p, prefix, str(local), named) for p in batch.problems),
                removed=tuple(prefix + k for k in batch.removed),
                folder=item.id,
                listing_complete=batch.listing_complete,
                listed=batch.listed,
                cursor=FileCursor(item.ctag, digest).dump() if batch.cursor is not None else None,
            )
        yield Batch(folder=item.id, cursor=FileCursor(item.ctag, digest).dump())

    def _download(self, drive: Drive, item: DriveItem) -> Path:
        """The whole file into the cache, atomically: a reader never sees half of it."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        suffix = Path(item.name).suffix or ".xlsx"
        target = self.cache_dir / f"{item.id}{suffix}"
        data = drive.download(item)
        fd, temp = tempfile.mkstemp(dir=self.cache_dir, prefix=".download.", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target


def _named(problem: Problem, prefix: str, local: str, named: str) -> Problem:
    return dataclasses.replace(
        problem,
        key=prefix + problem.key,
        reason=problem.reason.replace(local, named).replace(Path(local).name, named),
        where=problem.where.replace(local, named).replace(Path(local).name, named),
    )


def _drive_factory(
    settings: DriveLocationFields, name: str, context: ConnectorContext
) -> tuple[Callable[[], Drive], Any]:
    client = graph_client(settings, name, context, settings.user or settings.site or "")

    def drive() -> Drive:
        if settings.user:
            return Drive.of_user(client, settings.user)
        return Drive.of_site(client, settings.site or "", settings.library)

    return drive, client


def _cache_dir(name: str, context: ConnectorContext) -> Path:
    base: Path = context.state_dir or Path(tempfile.gettempdir())
    return base / "drive-cache" / name


def _connector(
    settings: DriveLocationFields, name: str, context: ConnectorContext, reader: Callable[[Path], Connector]
) -> DriveWorkbooksConnector:
    drive, client = _drive_factory(settings, name, context)
    return DriveWorkbooksConnector(
        name,
        context.options,
        drive=drive,
        path=settings.path,
        folder=settings.folder,
        cache_dir=_cache_dir(name, context),
        reader=reader,
        close=client.close,
    )


def _build_customers(settings: DriveCustomersSettings, context: ConnectorContext) -> DriveWorkbooksConnector:
    def reader(local: Path) -> Connector:
        return ExcelCustomersConnector(
            settings.name,
            context.options,
            path=local,
            sheet=settings.sheet,
            header_row=settings.header_row_number,
            columns=settings.columns.model_dump(),
            key_columns=settings.key_columns,
        )

    return _connector(settings, settings.name, context, reader)


def _build_activities(settings: DriveActivitiesSettings, context: ConnectorContext) -> DriveWorkbooksConnector:
    def reader(local: Path) -> Connector:
        sheet = dataclasses.replace(activity_sheet(settings, context.timezone), path=local)
        return ExcelActivitiesConnector(settings.name, context.options, sheet)

    return _connector(settings, settings.name, context, reader)


DRIVE_CUSTOMERS = SourceKind(
    name="drive_customers",
    settings=DriveCustomersSettings,
    build=_build_customers,
    summary="A customer list in a workbook (or a folder of them) on OneDrive or SharePoint, read through "
    "Microsoft Graph with the excel_customers mapping. See docs/microsoft-365.md.",
    capabilities=Capabilities(customers=True),
    tables=(("[sources.columns] of a drive_customers source", CustomerColumns, "The same as excel_customers."),),
)
DRIVE_ACTIVITIES = SourceKind(
    name="drive_activities",
    settings=DriveActivitiesSettings,
    build=_build_activities,
    summary="Orders, calls or notes in a workbook (or a folder of them) on OneDrive or SharePoint, read through "
    "Microsoft Graph with the excel_activities mapping.",
    capabilities=Capabilities(rows=True),
)
