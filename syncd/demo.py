"""`syncd demo`: copy the bundled sample into a folder and sync it once.

The copy is the admin's to look at and edit: the config, the mail and the customer
workbook are plain files, and running the demo again syncs incrementally.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from syncd.config import load_config
from syncd.pipeline import Pipeline
from syncd.store import Store


def install_sample(target: Path) -> Path:
    """Copy the sample into ``target`` (keeping files already there) and return the config path."""
    source = Path(str(resources.files("syncd.sample") / "data"))
    if not (source / "syncd.toml").is_file():
        raise FileNotFoundError(f"the bundled sample is missing from {source}; reinstall syncd")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        if destination.parent.name == "new":
            # Maildir file names start with the delivery time; give the copy that mtime, as a
            # delivery agent would, so a message without a Date gets the same date every time.
            stamp = int(destination.name.split(".", 1)[0])
            os.utime(destination, (stamp, stamp))
    for maildir in (target / "mail").glob("*"):
        for folder in [maildir, *maildir.glob(".*")]:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
    return target / "syncd.toml"


def run_demo(target: Path) -> int:
    config_path = install_sample(target)
    config = load_config(config_path)
    store = Store.open(config.store_url)
    try:
        result = Pipeline(config, store).run_pass()
        status = store.reads.status()
    finally:
        store.close()
    print(f"syncd demo in {target.resolve()}")
    for source in result.sources:
        state = "ok" if source.ok else f"FAILED: {source.error}"
        customers = config.kinds.get(source.kind).capabilities.customers
        counted = f"customers={source.customers_changed:<4}" if customers else f"new={source.new:<4}"
        print(f"  {source.name:<12} {counted} skipped={source.skipped:<3} quarantined={source.quarantined:<2} {state}")
    print(
        f"customers={status.customers} activities={status.activities} "
        f"unmatched={status.unmatched} quarantined={status.quarantined}"
    )
    print(f"timeline workbook: {Path(result.timeline_path).resolve()}")
    print(f"next: syncd status -c {config_path}   |   syncd timeline 'Adriatic' -c {config_path}")
    return 0 if result.ok else 1
