"""Uploading the timeline workbook(s) to OneDrive or SharePoint, where Microsoft 365 staff open them.

After a workbook is written locally (atomically, as ever), its bytes are uploaded to the
configured drive folder when its content hash differs from the one last uploaded; the
item id syncd created is kept with that hash, so a later upload replaces only that item.
A file at the target that syncd did not create is never replaced: the conflict is kept
as the output's error and named by `syncd status`, and tried again next pass. A locked
file (open, checked out) is uploaded next pass. The local copy stays.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from syncd.config import Config
from syncd.connectors.budget import RequestBudgets
from syncd.connectors.graph.drive import Drive, DriveError
from syncd.connectors.graph.kind import GraphAccountFields, graph_client
from syncd.model.errors import SourceError
from syncd.outputs.workbook import written_by_syncd
from syncd.pipeline.timeline_output import owner_file_name
from syncd.pipeline.wiring import connector_context
from syncd.store import Store

log = logging.getLogger("syncd.pipeline")


@dataclass
class PublishOutcome:
    uploaded: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def carries_syncd_mark(data: bytes) -> bool:
    """Whether workbook bytes are a workbook syncd wrote (the same test as for a local file)."""
    return written_by_syncd(io.BytesIO(data))


def publish_timelines(config: Config, store: Store, paths: list[Path], budgets: RequestBudgets) -> PublishOutcome:
    """Upload each written workbook in ``paths`` whose content changed since its last upload."""
    outcome = PublishOutcome()
    publish = config.timeline.publish
    if publish is None:
        return outcome
    source = config.source(publish.via)
    assert isinstance(source, GraphAccountFields)
    owner_of = _owners(store) if publish.owners_onedrive else {}
    pending = [p for p in paths if p.exists() and _published(store, _key(config, p, owner_of))[0] != _short(store, p)]
    if not pending:
        return outcome
    client = graph_client(source, publish.via, connector_context(config, budgets), publish.user or publish.site or "")
    shared: Drive | None = None
    try:
        for path in pending:
            owner = owner_of.get(path.name)
            folder = _folder(config, path, owner)
            key = _key(config, path, owner_of)
            _old_digest, owned = _published(store, key)
            try:
                if owner:
                    drive = Drive.of_user(client, owner)
                else:
                    if shared is None:
                        shared = (
                            Drive.of_user(client, publish.user)
                            if publish.user
                            else Drive.of_site(client, publish.site or "", publish.library)
                        )
                    drive = shared
                item = drive.upload(folder, path.name, path.read_bytes(), owned, carries_syncd_mark)
            except (DriveError, SourceError, OSError) as exc:
                log.error("publish %s failed: %s", key, exc)
                outcome.errors.append(f"publish {key}: {exc}")
                store.outputs.record_failure(key, str(exc))
                continue
            store.outputs.set_hash(key, f"{_short(store, path)}|{item.id}")
            outcome.uploaded.append(key)
            log.info("timeline published to=%s bytes=%d", key, path.stat().st_size)
    except (DriveError, SourceError) as exc:
        outcome.errors.append(f"publish: {exc}")
        log.error("publish failed: %s", exc)
    finally:
        client.close()
    return outcome


def _folder(config: Config, path: Path, owner: str | None) -> str:
    publish = config.timeline.publish
    assert publish is not None
    return publish.folder if owner or path == config.timeline.path else f"{publish.folder}/owners"


def _key(config: Config, path: Path, owner_of: dict[str, str]) -> str:
    """Where a workbook is published, as its output name in the store and in `syncd status`."""
    publish = config.timeline.publish
    assert publish is not None
    owner = owner_of.get(path.name)
    if owner:
        where = f"onedrive:{owner}"
    elif publish.user:
        where = f"onedrive:{publish.user}"
    else:
        where = f"sharepoint:{publish.site}" + (f"/{publish.library}" if publish.library else "")
    return f"{where}:{_folder(config, path, owner).strip('/')}/{path.name}"


def _short(store: Store, path: Path) -> str:
    """The local workbook's content hash, shortened so hash and item id fit the store's column."""
    return (store.outputs.hash(str(path)) or "")[:16]


def _published(store: Store, key: str) -> tuple[str | None, str | None]:
    """(content hash, item id) of the last upload to ``key``."""
    value = store.outputs.hash(key)
    if not value or "|" not in value:
        return None, None
    digest, _, item_id = value.partition("|")
    return digest, item_id or None


def _owners(store: Store) -> dict[str, str]:
    """Per-owner workbook file name -> the owner's address (owners that are addresses only)."""
    now = datetime.now(timezone.utc)
    owners = {c.owner for c in store.reads.customer_summaries(now) if c.owner and "@" in c.owner}
    return {f"timeline-{owner_file_name(o)}.xlsx": o for o in owners}
