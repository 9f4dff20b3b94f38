"""Files in OneDrive and SharePoint document libraries through Microsoft Graph: download and upload.

What syncd does with a drive, and the pages it follows:

* Find the drive: a user's OneDrive (``users/{id}/drive``), a site's default library
  (``sites/{host}:/{path}`` then ``/drive``) or a library by name (``/drives``)
  (https://learn.microsoft.com/graph/api/drive-get).
* Read a workbook: its driveItem by path gives ``eTag`` and ``cTag``; the content is
  downloaded only when the ``cTag`` (content tag) changed (https://learn.microsoft.com/graph/api/driveitem-get-content).
  While staff co-author a workbook, Graph serves its last saved version, which is what is
  read. A locked or checked-out file answers 423 (``resourceLocked``): ``DriveLocked``,
  retried next pass; nothing is half-read, because the whole file is downloaded first.
* Follow a folder: ``root/delta`` (business drives track changes from the root only),
  keeping the items under the folder (https://learn.microsoft.com/graph/api/driveitem-delta);
  a renamed workbook keeps its item id, a deleted one comes with the ``deleted`` facet.
* Write syncd's own file: up to 4 MB with one PUT, larger through an upload session in
  chunks of a multiple of 320 KiB, resuming from ``nextExpectedRanges`` after a failed chunk
  (https://learn.microsoft.com/graph/api/driveitem-createuploadsession). A new file is created
  with ``@microsoft.graph.conflictBehavior = fail``: a file of that name that syncd did not
  create is never replaced (``ForeignRemoteFile``); 409 ``nameAlreadyExists`` is that case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from syncd.connectors.graph.client import Conflict, GraphClient, Locked, NotFound

log = logging.getLogger("syncd.connectors.graph")

SIMPLE_UPLOAD_LIMIT = 4 * 1024 * 1024
CHUNK = 320 * 1024 * 10  # 3.2 MiB: Graph wants chunks in multiples of 320 KiB
CHUNK_ATTEMPTS = 5


class DriveError(Exception):
    """A drive operation that did not happen, with what to tell the admin."""


class DriveLocked(DriveError):
    """423: the file is checked out or locked by someone editing it; try again later."""


class ForeignRemoteFile(DriveError):
    """A file syncd did not create is where syncd would write: it is left alone."""


@dataclass(frozen=True)
class DriveItem:
    id: str
    name: str
    path: str  # from the drive root, "/"-separated, without a leading slash
    etag: str
    ctag: str
    size: int
    deleted: bool = False
    is_file: bool = True
    parent_id: str = ""
    is_folder: bool = False


def item_of(raw: dict[str, Any]) -> DriveItem:
    parent = str((raw.get("parentReference") or {}).get("path") or "")
    folder = parent.split("root:", 1)[1].strip("/") if "root:" in parent else ""
    name = str(raw.get("name") or "")
    return DriveItem(
        id=str(raw["id"]),
        name=name,
        path=f"{folder}/{name}".strip("/") if name else folder,
        etag=str(raw.get("eTag") or ""),
        ctag=str(raw.get("cTag") or ""),
        size=int(raw.get("size") or 0),
        deleted="deleted" in raw,
        is_file="file" in raw or ("folder" not in raw and "deleted" in raw),
        parent_id=str((raw.get("parentReference") or {}).get("id") or ""),
        is_folder="folder" in raw or "root" in raw,
    )


class Drive:
    """One drive (a OneDrive or a document library), by its Graph path ``drives/{id}``."""

    def __init__(self, client: GraphClient, drive_path: str):
        self.client = client
        self.path = drive_path

    @classmethod
    def of_user(cls, client: GraphClient, user: str) -> Drive:
        found = client.get(f"users/{quote(user, safe='@')}/drive", params={"$select": "id"})
        return cls(client, f"drives/{found['id']}")

    @classmethod
    def of_site(cls, client: GraphClient, site: str, library: str | None = None) -> Drive:
        """``site`` is ``host:/sites/Name`` (as in the site's URL); ``library`` a library name."""
        host, _, path = site.partition(":")
        found = client.get(f"sites/{host}:{path or '/'}", params={"$select": "id"})
        if not library:
            drive = client.get(f"sites/{found['id']}/drive", params={"$select": "id"})
            return cls(client, f"drives/{drive['id']}")
        for page in client.pages(f"sites/{found['id']}/drives", params={"$select": "id,name"}):
            for drive in page.get("value") or []:
                if str(drive.get("name", "")).casefold() == library.casefold():
                    return cls(client, f"drives/{drive['id']}")
        raise DriveError(f"site {site}: no document library named {library!r}")

    def item(self, path: str) -> DriveItem | None:
        try:
            raw = self.client.get(f"{self.path}/root:/{quote(path.strip('/'))}")
        except NotFound:
            return None
        except Locked:
            raise DriveLocked(f"{path} is locked (checked out or being edited); tried again next pass") from None
        return item_of(raw)

    def item_by_id(self, item_id: str) -> DriveItem | None:
        """An item's full metadata (delta omits path, and cTag on business drives)."""
        try:
            return item_of(self.client.get(f"{self.path}/items/{quote(item_id, safe='')}"))
        except NotFound:
            return None
        except Locked:
            raise DriveLocked(f"item {item_id} is locked; tried again next pass") from None

    def download(self, item: DriveItem) -> bytes:
        try:
            return self.client.download(f"{self.path}/items/{item.id}/content")
        except Locked:
            raise DriveLocked(f"{item.path} is locked (checked out or being edited); read again next pass") from None

    def changes(self, link: str | None) -> tuple[list[DriveItem], str]:
        """Items changed since ``link`` (all items when None), and the next delta link."""
        items: list[DriveItem] = []
        url = link or f"{self.path}/root/delta"
        params = None if link else {"$select": "id,name,eTag,cTag,size,file,folder,root,deleted,parentReference"}
        while True:
            page = self.client.get(url, params=params)
            params = None
            for raw in page.get("value") or []:
                if isinstance(raw, dict) and raw.get("id"):
                    items.append(item_of(raw))
            next_link = page.get("@odata.nextLink")
            if next_link:
                url = str(next_link)
                continue
            delta = page.get("@odata.deltaLink")
            if not delta:
                raise DriveError(f"{self.path}: a delta page with neither nextLink nor deltaLink")
            return items, str(delta)

    # ---- writing syncd's own file ------------------------------------------------------

    def upload(
        self, folder: str, name: str, data: bytes, owned_id: str | None, is_ours: Callable[[bytes], bool]
    ) -> DriveItem:
        """Put ``data`` at ``folder/name``; ``owned_id`` is the item syncd created there before.

        An existing file is replaced only when it is that item, or (the store was lost) its
        content carries syncd's mark (``is_ours``); otherwise ``ForeignRemoteFile``.
        """
        path = f"{folder.strip('/')}/{name}".strip("/")
        existing = self.item(path)
        if existing is not None and existing.id != owned_id:
            if not is_ours(self.download(existing)):
                raise ForeignRemoteFile(
                    f"{self.path}/{path}: a file syncd did not create is there; it is left as it is "
                    "(rename or move it, or choose another publish folder)"
                )
            log.info("drive file %s carries syncd's mark: taken back as syncd's own", path)
        target = f"{self.path}/items/{existing.id}" if existing is not None else f"{self.path}/root:/{quote(path)}:"
        behaviour = "replace" if existing is not None else "fail"
        try:
            if len(data) <= SIMPLE_UPLOAD_LIMIT:
                raw = self.client.put_bytes(f"{target}/content", data, {"@microsoft.graph.conflictBehavior": behaviour})
            else:
                raw = self._session_upload(target, name, data, behaviour)
        except Locked:
            raise DriveLocked(f"{self.path}/{path} is locked (open or checked out); uploaded next time") from None
        except Conflict:
            raise ForeignRemoteFile(
                f"{self.path}/{path}: a file of that name appeared meanwhile (409 nameAlreadyExists); left as it is"
            ) from None
        return item_of(raw)

    def _session_upload(self, target: str, name: str, data: bytes, behaviour: str) -> dict[str, Any]:
        session = self.client.request(
            "POST",
            f"{target}/createUploadSession",
            body={"item": {"@microsoft.graph.conflictBehavior": behaviour, "name": name}},
        )
        upload_url = str(session["uploadUrl"])
        # The upload URL is pre-authenticated: no Authorization header goes there (the page says so).
        http = requests.Session()
        try:
            start = 0
            failures = 0
            while True:
                end = min(start + CHUNK, len(data))
                try:
                    response = http.put(
                        upload_url,
                        data=data[start:end],
                        headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
                        timeout=self.client.timeout,
                    )
                except requests.RequestException as exc:
                    response = None
                    error = f"{type(exc).__name__}"
                if response is not None and response.status_code in (200, 201):
                    return dict(response.json())
                if response is not None and response.status_code == 202:
                    start = _next_start(response.json(), end)
                    failures = 0
                    continue
                if response is not None and response.status_code == 409:
                    raise ForeignRemoteFile(f"{target}: a file of that name appeared meanwhile (409); left as it is")
                if response is not None and response.status_code == 423:
                    raise DriveLocked(f"{target}: locked (open or checked out); uploaded next time")
                failures += 1
                if failures >= CHUNK_ATTEMPTS:
                    raise DriveError(f"{target}: upload session failed at byte {start}")
                # Resume where the server says it is (it may have kept part of the chunk).
                status = http.get(upload_url, timeout=self.client.timeout)
                start = _next_start(status.json(), start) if status.ok else start
                log.warning(
                    "upload chunk failed (%s); resuming at byte %d",
                    response.status_code if response is not None else error,
                    start,
                )
        finally:
            http.close()


def _next_start(payload: Any, default: int) -> int:
    ranges = payload.get("nextExpectedRanges") if isinstance(payload, dict) else None
    if not ranges:
        return default
    first = str(ranges[0]).split("-", 1)[0]
    return int(first) if first.isdigit() else default
