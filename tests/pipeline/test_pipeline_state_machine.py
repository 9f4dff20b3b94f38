"""Hypothesis drives the real pipeline (matching, store) through crashes.

The mailboxes are an in-memory source kind (tests/support/memory_kind.py) registered
through the registry, so nothing of syncd is patched but the store's commit, which
crashes on cue. Rules deliver mail into two staff mailboxes (sometimes the same message to both), run
passes that crash after a random number of committed batches, run passes that forget
what the store knows (so every item is delivered again, as after a lost cursor), and
run clean passes. Invariant after every clean pass: every delivered message is exactly
one activity, seen in exactly the mailboxes that hold it; nothing lost, nothing doubled.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from support.environment import PG_URL
from support.environment import pg_problem as _pg_problem
from support.helpers import BASE_TIME
from support.memory_kind import MemoryMailboxes, memory_kind
from syncd.config import parse_config
from syncd.connectors.registry import Registry
from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Role
from syncd.pipeline import Pipeline
from syncd.store import Store

CONFIG = """
[service]
state_dir = "state"
batch_size = 3
[matching]
internal_domains = ["ourco.example"]
[[sources]]
name = "alice"
kind = "memory"
mailbox = "alice"
owner = "alice@ourco.example"
[[sources]]
name = "bob"
kind = "memory"
mailbox = "bob"
owner = "bob@ourco.example"
"""


class Crash(Exception):
    pass


class PipelineMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="syncd-sm-"))
        self.schema: str | None = None
        if self.backend == "sqlite":
            url = f"sqlite:///{self.root / 'store.db'}"
        else:
            self.schema = f"sm_{uuid.uuid4().hex[:12]}"
            with sa.create_engine(PG_URL).begin() as c:
                c.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{self.schema}"
        self.mailboxes = MemoryMailboxes(boxes={"alice": {}, "bob": {}})
        kinds = Registry.builtin().with_kind(memory_kind(self.mailboxes))
        self.config = parse_config(CONFIG, self.root / "syncd.toml", kinds=kinds)
        self.store = Store.open(url)
        self.delivered: dict[str, set[str]] = {}  # message id -> mailboxes holding it
        self.counter = 0

    def teardown(self) -> None:
        self.store.close()
        if self.schema:
            with sa.create_engine(PG_URL).begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        shutil.rmtree(self.root, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        self.clean_pass()

    @rule(count=st.integers(1, 6), both=st.booleans())
    def deliver(self, count: int, both: bool) -> None:
        boxes = ["alice", "bob"] if both else [["alice", "bob"][self.counter % 2]]
        for _ in range(count):
            self.counter += 1
            msgid = f"sm{self.counter}@customer.example"
            participants = (
                Participant(f"c{self.counter % 3}@customer.example", "", Role.FROM),
                Participant("alice@ourco.example", "", Role.TO),
                Participant("bob@ourco.example", "", Role.CC),
            )
            for box in boxes:
                key = f"INBOX/{1700000000 + self.counter}.M{self.counter}.{box}"
                self.mailboxes.boxes[box][key] = ActivityRecord(
                    key=key,
                    kind=ActivityKind.EMAIL,
                    occurred_at=BASE_TIME + timedelta(minutes=self.counter),
                    direction=Direction.INBOUND,
                    subject=f"Message {self.counter}",
                    participants=participants,
                    message_id=msgid,
                    mailbox=f"{box}@ourco.example",
                    folder="INBOX",
                )
            self.delivered[msgid] = set(boxes)

    def _run(self, crash_after: int | None = None, forget: bool = False) -> None:
        commits = {"n": 0}
        real_commit = self.store.batches.commit

        def counting_commit(*args, **kwargs):  # type: ignore[no-untyped-def]
            if crash_after is not None and commits["n"] >= crash_after:
                raise Crash("killed between batches")
            commits["n"] += 1
            return real_commit(*args, **kwargs)

        if forget:
            self.mailboxes.forgetful = {"alice", "bob"}
        self.store.batches.commit = counting_commit  # type: ignore[method-assign]
        try:
            Pipeline(self.config, self.store).run_pass()
        finally:
            self.store.batches.commit = real_commit  # type: ignore[method-assign]
            self.mailboxes.forgetful = set()

    @rule(after=st.integers(0, 4))
    def crashing_pass(self, after: int) -> None:
        self._run(crash_after=after)

    @rule()
    def pass_that_forgot_its_state(self) -> None:
        self._run(forget=True)

    @rule()
    def clean_pass(self) -> None:
        self._run()
        self.check_converged()

    def check_converged(self) -> None:
        with self.store.engine.connect() as c:
            rows = c.execute(
                sa.text(
                    "select a.message_id, s.name from activities a join occurrences o on o.activity_id = a.id "
                    "join sources s on s.id = o.source_id where a.gone_at is null and o.gone_at is null"
                )
            ).all()
            activity_count = c.execute(sa.text("select count(*) from activities")).scalar_one()
        seen: dict[str, set[str]] = {}
        for message_id, source in rows:
            seen.setdefault(message_id, set()).add(source)
        assert seen == self.delivered
        assert activity_count == len(self.delivered)

    @invariant()
    def never_doubled(self) -> None:
        with self.store.engine.connect() as c:
            per_message = c.execute(
                sa.text("select message_id, count(*) from activities group by message_id having count(*) > 1")
            ).all()
            per_item = c.execute(
                sa.text(
                    "select source_id, item_key, count(*) from occurrences group by source_id, item_key "
                    "having count(*) > 1"
                )
            ).all()
        assert per_message == [] and per_item == []


@pytest.mark.parametrize("backend, examples", [("sqlite", 30), ("postgresql", 12)])
def test_pipeline_converges_through_crashes_and_redeliveries(backend: str, examples: int) -> None:
    if backend == "postgresql" and _pg_problem():
        import os

        message = f"PostgreSQL not reachable at {PG_URL}; set SYNCD_TEST_PG_URL"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    machine = type(f"PipelineMachine_{backend}", (PipelineMachine,), {"backend": backend})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
