"""The `syncd` command line. ``main()`` returns the exit code; nothing runs at import.

Exit codes:
  0    success
  1    a source or an output failed (the others were still synced), or status found one
  2    the config is invalid, or the command line is wrong
  3    the store cannot be opened or is unavailable (PostgreSQL down, disk full)
  4    nothing found (timeline: no such customer; export, forget: no such person, or several)
  70   an unexpected error (a bug: the log has the details; --debug shows the traceback)
  141  the output pipe was closed early (`syncd timeline X | head`): nothing more is said
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from syncd.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from syncd.model.records import Role
from syncd.model.views import SourceHealth

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_CONFIG, EXIT_STORE, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_INTERNAL, EXIT_PIPE = 70, 141

log = logging.getLogger("syncd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="A CRM without a CRM login: mail and workbooks matched to customers, "
        "written back as a timeline workbook.",
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="debug logging; re-raise unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=Path(os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG_PATH)),
            help=f"config file (default: $SYNCD_CONFIG or {DEFAULT_CONFIG_PATH})",
        )
        return p

    demo = sub.add_parser("demo", help="write the bundled sample into DIR and sync it once")
    demo.add_argument(
        "--dir", type=Path, default=Path("syncd-demo"), help="where to put the demo (default ./syncd-demo)"
    )

    sync = with_config(sub.add_parser("sync", help="sync every source"))
    sync.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    sync.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    sync.add_argument(
        "--confirm-removals",
        action="append",
        default=[],
        metavar="SOURCE",
        help="apply removals held for SOURCE by the empty/shrunk-source guard",
    )

    with_config(sub.add_parser("run", help="run the service loop until SIGTERM"))
    from syncd.privacy_commands import add_parsers as add_privacy_parsers

    add_privacy_parsers(sub, with_config)
    with_config(sub.add_parser("check-config", help="validate the config and what it points at"))

    status = with_config(
        sub.add_parser("status", help="counts and per-source health; exit 1 when a source needs attention")
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--alert-after",
        type=int,
        metavar="MINUTES",
        default=None,
        help="exit 1 when a source has failed for longer than this (default: service.alert_after_minutes)",
    )

    init = sub.add_parser("init", help="write a starter config to edit")
    init.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"where to write it (default {DEFAULT_CONFIG_PATH})",
    )

    timeline = with_config(sub.add_parser("timeline", help="one customer's history, newest first"))
    timeline.add_argument("customer", help="customer id, email, domain or part of the name")
    timeline.add_argument("--json", action="store_true")
    timeline.add_argument("--limit", type=int, default=50)

    explain = with_config(sub.add_parser("explain", help="why an activity is linked to its customers"))
    explain.add_argument(
        "activity", help="the Activity reference from the timeline workbook (A1b2c3d4e5) or a Message-ID"
    )
    explain.add_argument("--json", action="store_true")

    merge = with_config(
        sub.add_parser("merge", help="merge duplicate customer A into B (every activity and identity of A goes to B)")
    )
    merge.add_argument("merge", metavar="A", help="the customer to merge away: ID (as on the Customers sheet) or name")
    merge.add_argument("keep", metavar="B", help="the customer to keep: ID or name")

    rules = with_config(sub.add_parser("rules", help="manual rules learned on the Review sheet, and answers pending"))
    rules.add_argument("--delete", type=int, metavar="ID", help="forget the learned rule with this ID")
    rules.add_argument("--json", action="store_true")

    quarantine = with_config(sub.add_parser("quarantine", help="items that could not be ingested, with reasons"))
    quarantine.add_argument("--json", action="store_true")

    graph_login = with_config(
        sub.add_parser(
            "graph-login", help='sign in once as the mailbox user of a graph source with auth = "device_code"'
        )
    )
    graph_login.add_argument("source", help="the source name")
    return parser


def _load(path: Path, debug: bool = False) -> Config:
    """Load the config and apply its log settings (env SYNCD_LOG_LEVEL and --debug win)."""
    from syncd.logs import setup_logging

    config = load_config(path)
    level = "debug" if debug else os.environ.get("SYNCD_LOG_LEVEL", config.service.log_level)
    setup_logging(level, os.environ.get("SYNCD_LOG_FORMAT", config.service.log_format))
    return config


@contextmanager
def _opened_store(config: Config) -> Iterator[Any]:
    from syncd.store import Store

    store = Store.open(config.store_url)
    try:
        yield store
    finally:
        store.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _print_json(value: Any) -> None:
    from syncd.model.views import as_json

    print(json.dumps(as_json(value), indent=2, default=_json_default))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_files=True)
    print(f"{args.config}: OK ({len(config.sources)} sources)")
    return EXIT_OK


def _print_pass(result: Any) -> None:
    for s in result.sources:
        state = "ok" if s.ok else f"FAILED: {s.error}"
        extra = f" SUSPECT: {s.suspect}" if s.suspect else ""
        if s.outside_window:
            extra += f" before-window={s.outside_window}"
        print(
            f"  {s.name:<20} {s.kind:<16} new={s.new} updated={s.updated} removed={s.removed} "
            f"skipped={s.skipped} quarantined={s.quarantined} {state}{extra}"
        )


def cmd_sync(args: argparse.Namespace) -> int:
    from syncd.pipeline import Pipeline, warn_insecure

    config = _load(args.config, args.debug)
    warn_insecure(config)
    unknown = [n for n in args.source + args.confirm_removals if n not in {s.name for s in config.sources}]
    if unknown:
        print(f"syncd: unknown source(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG
    with _opened_store(config) as store:
        result = Pipeline(config, store).run_pass(only=args.source or None, confirm_removals=args.confirm_removals)
    _print_pass(result)
    if result.output_errors:
        for error in result.output_errors:
            print(f"timeline: NOT WRITTEN: {error} (the previous workbook is left as it was)")
    else:
        print(f"timeline: {result.timeline_path} ({'written' if result.timeline_written else 'unchanged'})")
    return EXIT_OK if result.ok else EXIT_SOURCE_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.service import run_service

    return run_service(args.config, debug=args.debug)


def _needs_attention(source: SourceHealth, alert_after_minutes: int, now: datetime) -> str | None:
    if source.suspect:
        return f"suspect: {source.suspect}"
    if source.error and source.failing_since:
        failing_for = now - source.failing_since
        if failing_for.total_seconds() >= alert_after_minutes * 60:
            return f"failing for {int(failing_for.total_seconds() // 60)} min: {source.error}"
    return None


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args.config, args.debug)
    with _opened_store(config) as store:
        status, privacy = store.reads.status(), store.privacy.status()
    configured = {s.name: s.kind for s in config.sources}
    held = {s.name: s for s in status.sources}
    sources = [held.get(name) or SourceHealth(name=name, kind=kind) for name, kind in configured.items()]
    sources.sort(key=lambda s: s.name)
    alert_after = config.service.alert_after_minutes if args.alert_after is None else args.alert_after
    now = datetime.now(timezone.utc)
    attention = {s.name: why for s in sources if (why := _needs_attention(s, alert_after, now))}
    for output in status.outputs:
        if output.error:
            since = output.failing_since.isoformat() if output.failing_since else "?"
            attention[output.path] = f"not written since {since}: {output.error}"
    if args.json:
        from syncd.model.views import as_json

        shown = as_json(status)
        shown["sources"] = as_json(sources)
        shown["attention"] = attention
        shown["privacy"] = as_json(privacy)
        print(json.dumps(shown, indent=2, default=_json_default))
    else:
        print(
            f"customers={status.customers} activities={status.activities} "
            f"unmatched={status.unmatched} quarantined={status.quarantined}"
        )
        print(f"privacy: {privacy.summary()}")
        for s in sources:
            skipped = ",".join(f"{k}:{v}" for k, v in sorted(s.skipped.items())) or "0"
            last_sync = s.last_sync.isoformat() if s.last_sync else "never"
            line = (
                f"  {s.name:<20} {s.kind:<16} last_sync={last_sync} "
                f"ingested={s.ingested} backlog={s.backlog} skipped={skipped} "
                f"quarantined={s.quarantined}"
            )
            if s.error:
                since = s.failing_since.isoformat() if s.failing_since else None
                retry = s.next_retry.isoformat() if s.next_retry else None
                line += f" ERROR (since {since}, next retry {retry}): {s.error}"
            if s.suspect:
                line += f" SUSPECT: {s.suspect}"
            if s.notice:
                line += f" NOTICE: {s.notice}"
            print(line)
        for name, why in attention.items():
            print(f"ATTENTION {name}: {why}")
    return EXIT_SOURCE_FAILED if attention else EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from importlib import resources

    target: Path = args.path
    if target.exists():
        print(f"syncd: {target} exists; not overwriting it", file=sys.stderr)
        return EXIT_CONFIG
    starter = (resources.files("syncd.starter") / "syncd.example.toml").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(starter)
    print(f"wrote {target}; edit it, then run: syncd check-config -c {target}")
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace) -> int:
    config = _load(args.config, args.debug)
    with _opened_store(config) as store:
        customers = store.reads.find_customers(args.customer)
        if not customers:
            print(f"syncd: no customer matches {args.customer!r}", file=sys.stderr)
            return EXIT_NOT_FOUND
        activities = store.reads.activities(limit=args.limit, customer_ids=[c.id for c in customers])
    if args.json:
        _print_json({"customers": customers, "activities": activities})
        return EXIT_OK
    print("; ".join(f"#{c.id} {c.name} ({c.kind})" for c in customers))
    for a in activities:
        when = a.occurred_at.strftime("%Y-%m-%d %H:%M")
        sender = next((p.email for p in a.participants if p.role == Role.FROM), "")
        print(f"  {when}  {a.kind:<7} {a.direction:<8} {sender:<32} {a.subject}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from syncd.mapping.matcher import link_activity
    from syncd.outputs.view import activity_ref
    from syncd.pipeline import Pipeline

    config = _load(args.config, args.debug)
    wanted = args.activity.strip().strip("<>")
    with _opened_store(config) as store:
        activity = next(
            (a for a in store.reads.activities() if activity_ref(a) == wanted or a.message_id == wanted), None
        )
        if activity is None:
            print(
                f"syncd: no activity {args.activity!r} (use the Activity column of the timeline workbook)",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        pipeline = Pipeline(config, store)
        pipeline.refresh_index()
        trace: list[str] = []
        link_activity(activity.participants, dict(activity.hints), pipeline.index, pipeline.policy, trace)
    if args.json:
        _print_json({"activity": activity_ref(activity), "links": activity.customers, "trace": trace})
        return EXIT_OK
    print(f"{activity_ref(activity)}  {activity.occurred_at:%Y-%m-%d %H:%M}  {activity.kind}  {activity.subject}")
    print("linked:" if activity.customers else "linked: none (the activity is on the Review sheet)")
    for link in activity.customers:
        print(f"  #{link.customer_id} {link.name}: rule {link.rule} ({link.confidence:.2f}), {link.evidence}")
    print("rules tried, per participant, phone and customer name (with today's customers and rules):")
    for line in trace:
        print(f"  {line}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from syncd.mapping.review import resolve_customer
    from syncd.pipeline import PassResult, Pipeline

    config = _load(args.config, args.debug)
    with _opened_store(config) as store:
        pipeline = Pipeline(config, store)
        pipeline.refresh_index()
        ids = []
        for text in (args.merge, args.keep):
            found = resolve_customer(text, pipeline.index)
            if found.customer_id is None:
                print(f"syncd: {found.note}", file=sys.stderr)
                return EXIT_NOT_FOUND
            ids.append(found.customer_id)
        names = pipeline.index.names
        moved = store.review.merge_customers(ids[0], ids[1])
        pipeline.refresh_index()
        store.links.rematch(pipeline.link)
        pipeline.write_outputs(PassResult())
    print(
        f"merged #{ids[0]} {names[ids[0]]} into #{ids[1]} {names[ids[1]]}: {moved['links']} links, "
        f"{moved['identities']} identities, {moved['people']} people moved"
    )
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    config = _load(args.config, args.debug)
    with _opened_store(config) as store:
        if args.delete is not None:
            from syncd.pipeline import PassResult, Pipeline

            if not store.review.delete_manual_rule(args.delete):
                print(f"syncd: no learned rule {args.delete}", file=sys.stderr)
                return EXIT_NOT_FOUND
            pipeline = Pipeline(config, store)
            pipeline.refresh_index()
            changed = store.links.rematch(pipeline.link)
            pipeline.write_outputs(PassResult())
            print(f"rule {args.delete} forgotten; {changed} activities matched again")
            return EXIT_OK
        rules = store.review.manual_rules()
        names = store.reads.customer_names()
    if args.json:
        _print_json(rules)
        return EXIT_OK
    for rule in config.matching.rules:
        kind = next(k for k in ("email", "domain", "phone", "name") if getattr(rule, k))
        print(f"config  {kind}={getattr(rule, kind)} -> {rule.customer}")
    for rule in rules:
        if rule.kind == "pending":
            print(f"{rule.id:>6}  Review row {rule.value}: {rule.customer!r} not applied: {rule.note}")
        elif rule.kind == "nomerge":
            print(f"{rule.id:>6}  merge suggestion {rule.value} dismissed")
        else:
            target = names.get(rule.customer_id or 0, f"#{rule.customer_id}")
            print(f"{rule.id:>6}  {rule.kind}={rule.value} -> {target}  (learned: {rule.origin})")
    return EXIT_OK


def cmd_quarantine(args: argparse.Namespace) -> int:
    config = _load(args.config, args.debug)
    with _opened_store(config) as store:
        items = store.reads.quarantine()
    if args.json:
        _print_json(items)
    else:
        for item in items:
            print(f"{item.source}  {item.key}  {item.reason}  ({item.where})")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from syncd.demo import run_demo

    return run_demo(args.dir)


def cmd_graph_login(args: argparse.Namespace) -> int:
    """Device-code sign-in: prints where to enter the code, waits, and keeps the tokens (0600)."""
    from syncd.connectors.graph.kind import GraphAccountFields, graph_client
    from syncd.model.errors import SourceError
    from syncd.pipeline.wiring import connector_context

    config = _load(args.config, args.debug)
    source = next((s for s in config.sources if s.name == args.source), None)
    if not isinstance(source, GraphAccountFields) or source.auth != "device_code":
        print(f'syncd: {args.source} is not a graph source with auth = "device_code"', file=sys.stderr)
        return EXIT_CONFIG
    client = graph_client(source, args.source, connector_context(config))
    try:
        user = client.tokens.device_login(lambda message: print(message, flush=True))
    except SourceError as exc:
        print(f"syncd: sign-in failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args.source}: signed in as {user}; tokens kept in {client.tokens.sign_in.cache_path}")
    return EXIT_OK


def _privacy_command(name: str, args: argparse.Namespace) -> int:
    """``syncd export``, ``forget`` and ``audit``, kept in ``syncd.privacy_commands``."""
    from syncd import privacy_commands

    command = getattr(privacy_commands, name)
    return int(command(args, _load(args.config, args.debug), _opened_store))


def _privacy(name: str) -> Callable[[argparse.Namespace], int]:
    return lambda args: _privacy_command(name, args)


COMMANDS = {
    "graph-login": cmd_graph_login,
    "demo": cmd_demo,
    "sync": cmd_sync,
    "run": cmd_run,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "timeline": cmd_timeline,
    "explain": cmd_explain,
    "quarantine": cmd_quarantine,
    "init": cmd_init,
    "merge": cmd_merge,
    "rules": cmd_rules,
    "export": _privacy("cmd_export"),
    "forget": _privacy("cmd_forget"),
    "audit": _privacy("cmd_audit"),
}


def main(argv: Sequence[str] | None = None) -> int:
    from syncd.logs import setup_logging
    from syncd.store import StoreError
    from syncd.store.engine import fault_reason, store_unavailable

    args = _parser().parse_args(argv)
    setup_logging(
        "debug" if args.debug else os.environ.get("SYNCD_LOG_LEVEL", "info"), os.environ.get("SYNCD_LOG_FORMAT", "text")
    )
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`syncd timeline X | head -1`): say nothing, as a pipeline expects.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except OSError as exc:
        if store_unavailable(exc):
            print(f"syncd: the store is unavailable: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_STORE
        if args.debug:
            raise
        print(f"syncd: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:
        if store_unavailable(exc):
            print(f"syncd: the store is unavailable: {fault_reason(exc)}", file=sys.stderr)
            return EXIT_STORE
        if args.debug:
            raise
        log.exception("unexpected error at=%s", datetime.now(timezone.utc).isoformat())
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
