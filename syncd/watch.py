"""Following staff workbooks live: a change on disk syncs its source within seconds.

watchdog watches the folders holding mapped workbooks (and the timeline workbook, whose
Review sheet admins type into). Excel saves by writing a temporary file and renaming it
over the workbook, and keeps a ``~$name.xlsx`` owner file while it has the book open;
sync clients do similar dances. So events are matched by the *final* file name (a rename's
destination counts), side files are ignored, and each file is debounced: the source is
synced only once the file has been quiet for ``debounce_seconds``. A file caught mid-write
anyway is refused by the reader (``SourceUnavailable``) and read on the next event or pass.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from syncd.connectors.sheets import is_excel_side_file

log = logging.getLogger("syncd.watch")

TIMELINE_MARK = "__timeline__"  # the name reported when the timeline workbook changed


class WorkbookWatcher:
    """Calls ``on_change(name)`` for each source whose workbook settled after a change."""

    def __init__(
        self, files: Iterable[tuple[str, Path]], on_change: Callable[[str], None], debounce_seconds: float = 0.5
    ):
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.names_by_path: dict[str, list[str]] = defaultdict(list)
        for name, path in files:
            self.names_by_path[str(path.resolve())].append(name)
        self.on_change = on_change
        self.debounce = debounce_seconds
        self.timers: dict[str, threading.Timer] = {}
        self.lock = threading.Lock()
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("modified", "created", "moved", "closed", "deleted"):
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "") or ""):
                    if raw:
                        watcher._touched(str(raw))

        self.observer = Observer()
        for folder in sorted({str(Path(p).parent) for p in self.names_by_path}):
            if Path(folder).is_dir():
                self.observer.schedule(Handler(), folder, recursive=False)
            else:
                log.warning("cannot watch %s: no such folder; its workbooks are read at each pass", folder)
        self.observer.daemon = True

    def _touched(self, raw_path: str) -> None:
        path = str(Path(raw_path).resolve()) if raw_path else raw_path
        if path not in self.names_by_path or is_excel_side_file(Path(path).name):
            return
        with self.lock:
            timer = self.timers.pop(path, None)
            if timer is not None:
                timer.cancel()
            timer = threading.Timer(self.debounce, self._settled, args=(path,))
            timer.daemon = True
            self.timers[path] = timer
            timer.start()

    def _settled(self, path: str) -> None:
        with self.lock:
            self.timers.pop(path, None)
        for name in self.names_by_path[path]:
            log.info("workbook changed path=%s source=%s", path, name)
            self.on_change(name)

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        with self.lock:
            for timer in self.timers.values():
                timer.cancel()
            self.timers.clear()
        self.observer.stop()
        self.observer.join(timeout=5)
