"""``syncd export``, ``syncd forget`` and ``syncd audit``: a person's access and erasure requests.

PERSON is found as ``syncd timeline`` finds a customer (id, email, domain or part of the
name) but must name exactly one person. ``forget`` without ``--yes`` only says what it
would erase. Exit codes as the CLI's: 0 done, 2 a wrong command line, 3 the store, 4 no
such person (or more than one).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncd.config import Config
from syncd.mapping.privacy import digest
from syncd.model.views import CustomerRef

EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND = 0, 2, 4


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    export = with_config(
        sub.add_parser("export", help="everything stored about one person, as a workbook or JSON (exit 4: not found)")
    )
    export.add_argument("person", help="customer id, email or part of the name (one person)")
    export.add_argument("-o", "--output", type=Path, help="the workbook to write (a new file)")
    export.add_argument("--json", action="store_true", help="print JSON instead of writing a workbook")
    forget = with_config(
        sub.add_parser(
            "forget", help="erase one person everywhere syncd keeps them; without --yes only shows what would go"
        )
    )
    forget.add_argument("person", help="customer id, email or part of the name (one person)")
    forget.add_argument("--yes", action="store_true", help="erase (without it nothing changes)")
    with_config(sub.add_parser("audit", help="erasures and retention purges: when, who, how many"))


def _one_person(store: Any, query: str) -> CustomerRef | str:
    found = [c for c in store.reads.find_customers(query) if c.kind == "person"]
    if not found:
        return f"no person matches {query!r}"
    if len(found) > 1:
        listed = ", ".join(f"#{c.id} {c.name}" for c in found[:10])
        return f"{len(found)} people match {query!r} ({listed}); name one by its id"
    person: CustomerRef = found[0]
    return person


def cmd_export(args: argparse.Namespace, config: Config, opened: Any) -> int:
    from syncd.model.views import as_json
    from syncd.outputs.person_export import write_export

    if not args.json and args.output is None:
        print("syncd export: give -o FILE for a workbook, or --json", file=sys.stderr)
        return EXIT_USAGE
    with opened(config) as store:
        person = _one_person(store, args.person)
        if isinstance(person, str):
            print(f"syncd: {person}", file=sys.stderr)
            return EXIT_NOT_FOUND
        export = store.privacy.person_export(person.id)
    if args.json:
        print(json.dumps(as_json(export.as_plain()), indent=2, default=str))
        return EXIT_OK
    write_export(export, args.output)
    rows = sum(len(sheet.rows) for sheet in export.sheets)
    print(f"wrote {args.output}: #{person.id} {person.name}, {rows} rows in {len(export.sheets)} sheets")
    return EXIT_OK


def cmd_forget(args: argparse.Namespace, config: Config, opened: Any) -> int:
    with opened(config) as store:
        person = _one_person(store, args.person)
        if isinstance(person, str):
            print(f"syncd: {person}", file=sys.stderr)
            return EXIT_NOT_FOUND
        salt = store.privacy.salt()
        emails = [value for cid, kind, value in store.reads.identity_rows() if cid == person.id and kind == "email"]
        names = dict.fromkeys([person.name, *store.privacy.merged_names(person.id)])
        digests = [("email", digest(salt, "email", e)) for e in emails]
        digests += [("name", digest(salt, "name", name)) for name in names]
        actor = getpass.getuser()
        erasure = store.privacy.forget(person.id, digests, actor, dry_run=not args.yes)
        # The outputs are rewritten without them on the next pass: forget every output's hash.
        if args.yes:
            store.outputs.forget_hashes()
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in erasure.counts().items())
    if not args.yes:
        print(f"would erase #{person.id} {person.name}: {counts}")
        print("nothing was changed; run again with --yes to erase")
        return EXIT_OK
    print(f"erased #{person.id}: {counts}")
    print(
        "the timeline and per-owner workbooks (and their published copies) and contact notes "
        "are rewritten without them on the next pass"
    )
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, config: Config, opened: Any) -> int:
    with opened(config) as store:
        entries = store.privacy.audit()
    for entry in entries:
        counts = " ".join(f"{k}={v}" for k, v in entry.counts.items())
        print(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.action:<10} by {entry.actor:<16} {counts}")
    if not entries:
        print("no erasures or purges recorded")
    return EXIT_OK
