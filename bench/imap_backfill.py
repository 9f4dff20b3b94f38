"""IMAP backfill benchmark: syncd against a raw imapclient FETCH of the same headers.

Fills a throwaway local Dovecot with N messages of realistic sizes (one in ten carries an
attachment), warms Dovecot's index and preview cache, then in the same run times

  (a) raw: imapclient UID FETCH of UID FLAGS INTERNALDATE RFC822.SIZE and the header
      fields syncd reads, for every message, in chunks;
  (b) syncd: ``syncd sync --once`` in a child process (so its peak RSS is its own) with a
      fresh SQLite store: a full backfill of that mailbox (connect, SEARCH, fetch, parse,
      match, store), then the timeline workbook.

``syncd_msgs_per_s`` is the backfill as syncd times it (its ``source=bench ... seconds=``
log line: from connecting to the last committed batch), the figure to hold against the
raw fetch, which is timed from its first FETCH to its last. ``process_msgs_per_s`` is the
whole child process, interpreter start and the 20,000-row workbook included. Each side
runs ``--repeat`` times, alternating, and the medians are reported. This kind of machine
is shared and its speed drifts by half between minutes, so ``ratio`` is the median of the
paired ratios (each raw run against the syncd run right after it), which drift moves
less than it moves either side alone.

Run as root (Dovecot drops privileges):  python bench/imap_backfill.py --messages 20000
Ends with one line of key=value figures.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test support code; syncd is the installed one

from support.servers.dovecot import Dovecot  # noqa: E402
from syncd.connectors.imap.connector import HEADER_ITEM  # noqa: E402

USER = "bench@ourco.example"
WORDS = (
    "order delivery invoice price quote meeting sample contract shipment payment container pallet week "
    "confirm schedule thanks regards please attached update"
).split()


def message(n: int, rng: random.Random, now: datetime) -> bytes:
    msg = EmailMessage()
    inbound = rng.random() < 0.7
    customer = f"buyer{rng.randint(1, 400)}@customer{rng.randint(1, 300)}.example"
    msg["From"] = customer if inbound else USER
    msg["To"] = USER if inbound else customer
    if rng.random() < 0.2:
        msg["Cc"] = f"colleague{rng.randint(1, 9)}@ourco.example"
    msg["Subject"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize()
    msg["Date"] = format_datetime(now - timedelta(minutes=n * 7))
    msg["Message-ID"] = f"<bench{n}@mx.example>"
    if n > 0 and rng.random() < 0.5:
        msg["In-Reply-To"] = f"<bench{n - 1}@mx.example>"
        msg["References"] = f"<bench{max(0, n - 5)}@mx.example> <bench{n - 1}@mx.example>"
    body = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(rng.randint(3, 40)))
    msg.set_content(body)
    if rng.random() < 0.1:
        msg.add_attachment(
            rng.randbytes(rng.randint(20_000, 300_000)),
            maintype="application",
            subtype="pdf",
            filename=f"offer-{n}.pdf",
        )
    return bytes(msg)


def raw_fetch(server: Dovecot, chunk: int) -> tuple[int, float]:
    client = server.client(USER)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    started = time.perf_counter()
    count = 0
    for start in range(0, len(uids), chunk):
        response = client.fetch(
            uids[start : start + chunk], ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", HEADER_ITEM]
        )
        count += len(response)
    elapsed = time.perf_counter() - started
    client.logout()
    return count, elapsed


def warm(server: Dovecot, chunk: int) -> None:
    """Let Dovecot index the Maildir and fill its caches before anything is timed."""
    client = server.client(USER)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    for start in range(0, len(uids), chunk):
        client.fetch(
            uids[start : start + chunk],
            ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", HEADER_ITEM, "BODY.PEEK[TEXT]<0.2048>", "PREVIEW"],
        )
    client.logout()


def syncd_backfill(server: Dovecot, work: Path, batch: int, profile: str | None) -> tuple[int, float, float, float]:
    work.mkdir()
    (work / "pw").write_text(server.users[USER])
    (work / "pw").chmod(0o600)
    (work / "syncd.toml").write_text(f"""
[service]
state_dir = "state"
batch_size = {batch}
[matching]
internal_domains = ["ourco.example"]
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "bench"
kind = "imap"
host = "127.0.0.1"
port = {server.port}
tls = "none"
username = "{USER}"
owner = "{USER}"
idle = false
backfill_days = 3650
password_secret = {{ file = "{work / "pw"}" }}
""")
    started = time.perf_counter()
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    done = subprocess.run(
        [sys.executable, *profiler, "-m", "syncd", "sync", "--once", "-c", str(work / "syncd.toml")],
        cwd=work,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"syncd failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    count = int(next(w.split("=")[1] for w in done.stdout.split() if w.startswith("new=")))
    # The source's own log line times fetch + parse + match + store, without start-up and workbook.
    ingest = float(
        next(
            w.split("=")[1]
            for line in done.stderr.splitlines()
            if "source=bench" in line
            for w in line.split()
            if w.startswith("seconds=")
        )
    )
    # syncd logs its own peak (VmHWM, which starts afresh at exec) after the source and the workbook.
    peaks = [
        int(w.split("=")[1]) for line in done.stderr.splitlines() for w in line.split() if w.startswith("peak_rss_mb=")
    ]
    return count, elapsed, float(max(peaks)), ingest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=500, help="FETCH chunk for the raw run")
    parser.add_argument("--batch", type=int, default=500, help="syncd batch_size")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the (last) syncd run to FILE")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side; medians are reported")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    work.chmod(0o755)  # Dovecot, running as its own user, must reach its folder inside
    server = Dovecot(work / "dovecot", {USER: "bench-pw"})
    raw_runs: list[float] = []
    syncd_runs: list[tuple[int, float, float, float]] = []
    try:
        server.start()
        rng = random.Random(7)
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        # A generator: the benchmark process must not hold the mail, or a child forked from
        # it would start out that large.
        server.deliver_files(
            USER, "INBOX", ((f"{1700000000 + n}.M{n}.bench", message(n, rng, now)) for n in range(args.messages))
        )
        size_mb = sum(p.stat().st_size for p in (work / "dovecot" / "mail").rglob("*") if p.is_file()) / 2**20
        print(f"filled {args.messages} messages ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f}s")
        warm(server, args.chunk)
        for run in range(args.repeat):
            raw_count, raw_seconds = raw_fetch(server, args.chunk)
            raw_runs.append(raw_count / raw_seconds)
            syncd_runs.append(syncd_backfill(server, work / f"run{run}", args.batch, args.profile))
            count, process_seconds, _peak, ingest_seconds = syncd_runs[-1]
            print(
                f"run {run + 1}: raw {raw_runs[-1]:.0f} msg/s, syncd backfill {count / ingest_seconds:.0f} msg/s "
                f"(whole process {count / process_seconds:.0f} msg/s), "
                f"ratio {count / ingest_seconds / raw_runs[-1]:.2f}"
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    count = syncd_runs[0][0]
    raw_rate = statistics.median(raw_runs)
    syncd_rate = statistics.median(n / ingest for n, _process, _peak, ingest in syncd_runs)
    process_rate = statistics.median(n / process for n, process, _peak, _ingest in syncd_runs)
    peak_mb = max(peak for _n, _process, peak, _ingest in syncd_runs)
    ratio = statistics.median(
        n / ingest / raw for (n, _process, _peak, ingest), raw in zip(syncd_runs, raw_runs, strict=False)
    )
    process_ratio = statistics.median(
        n / process / raw for (n, process, _peak, _ingest), raw in zip(syncd_runs, raw_runs, strict=False)
    )
    print(f"raw imapclient fetch: {raw_count} messages, median {raw_rate:.0f} msg/s")
    print(
        f"syncd backfill:       {count} activities, median {syncd_rate:.0f} msg/s "
        f"(connect, search, fetch, parse, match, store)"
    )
    print(f"syncd whole process:  median {process_rate:.0f} msg/s (start, migrate, backfill, timeline workbook)")
    print(
        f"messages={args.messages} raw_msgs_per_s={raw_rate:.0f} syncd_msgs_per_s={syncd_rate:.0f} "
        f"ratio={ratio:.2f} process_msgs_per_s={process_rate:.0f} "
        f"process_ratio={process_ratio:.2f} peak_rss_mb={peak_mb:.0f} repeat={args.repeat}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
