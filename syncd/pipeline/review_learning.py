"""What admins typed on the Review sheet, turned into manual rules, pending notes and merges.

The Review sheet lists unmatched activities and probable duplicate customers. An admin
types a customer into an activity's Customer cell (learned as a rule for its addresses,
phones or customer name) or answers a merge suggestion (merge, the IDs to merge with the
one to keep first, or no).
What cannot be applied yet stays pending, with a note on the sheet saying why.
"""

from __future__ import annotations

import logging
import re
from itertools import combinations

from syncd.mapping.duplicates import pair_ref, parse_merge_ref
from syncd.mapping.matcher import CustomerIndex, MatchPolicy
from syncd.mapping.review import resolve_customer, rule_keys
from syncd.outputs.review_sheet import ReviewEntry, read_review_entries
from syncd.outputs.view import activity_ref
from syncd.store import Store, StoreError

log = logging.getLogger("syncd.pipeline")

#: Answers to a merge suggestion that mean "these are different customers", in the
#: languages of the sales teams syncd serves.
NO_WORDS = frozenset({"no", "n", "ignore", "keep both", "ne", "nie", "nej", "nein"})
#: Answers that mean "merge them" (keeping the suggested survivor).
YES_WORDS = frozenset({"merge", "yes", "y", "ok", "da", "tak", "ja"})


def learn_review(store: Store, index: CustomerIndex, policy: MatchPolicy, timeline_path: object, max_rows: int) -> int:
    """Turn Customer cells an admin filled on the Review sheet into manual rules.
    Returns how many assignments were learned (pending ones show their note on Review)."""
    from pathlib import Path

    entries = read_review_entries(Path(str(timeline_path)))
    pending = store.review.pending_assignments()
    for entry in entries:
        if not entry.customer_text and entry.ref in pending:
            store.review.drop_pending(entry.ref)  # the admin cleared the cell: forget it
    typed = [e for e in entries if e.customer_text]
    if not typed:
        return 0
    learned = 0
    for entry in (e for e in typed if parse_merge_ref(e.ref)):
        learned += answer_merge(store, entry)
    typed = [e for e in typed if not parse_merge_ref(e.ref)]
    if not typed:
        return learned
    by_ref = {activity_ref(a): a for a in store.reads.activities(limit=max_rows, unmatched_only=True)}
    for entry in typed:
        activity = by_ref.get(entry.ref)
        if activity is None:
            store.review.drop_pending(entry.ref)
            continue
        if activity.customers:
            continue  # matched meanwhile (e.g. the customer was added to the customer sheet)
        resolution = resolve_customer(entry.customer_text, index)
        if resolution.customer_id is None:
            if pending.get(entry.ref) != (entry.customer_text, resolution.note or ""):
                store.review.save_assignment(entry.ref, [], None, entry.customer_text, resolution.note)
                log.warning("review row %d (%s): %s", entry.row, entry.ref, resolution.note)
            continue
        keys = rule_keys(activity, policy)
        if not keys:
            note = "this activity has no outside address, phone or customer name to learn from"
            store.review.save_assignment(entry.ref, [], None, entry.customer_text, note)
            continue
        store.review.save_assignment(entry.ref, keys, resolution.customer_id, entry.customer_text)
        log.info(
            "review row %d (%s): learned %s -> customer #%d %s",
            entry.row,
            entry.ref,
            ", ".join(f"{k}={v}" for k, v in keys),
            resolution.customer_id,
            index.names.get(resolution.customer_id, ""),
        )
        learned += 1
    return learned


def merge_plan(ref: str, typed: str) -> tuple[int, list[int], list[int]] | str | None:
    """What an answer to the merge suggestion ``ref`` asks for: (keep, merge these into it,
    keep these apart from it), None for "no", or a note saying what to type instead.

    ``merge``/``yes`` merges every member into the proposed (oldest) one; one ID keeps that
    customer and merges the others into it; several IDs merge those into the first one
    named and leave the rest apart, remembered so the group is not suggested again."""
    members = parse_merge_ref(ref) or ()
    answer = typed.strip().lower()
    if answer in NO_WORDS:
        return None
    keep = min(members)
    if answer in YES_WORDS:
        return keep, [m for m in members if m != keep], []
    note = f"type merge, no, or the IDs to merge with the one to keep first (of {', '.join(map(str, sorted(members)))})"
    if not re.fullmatch(r"[#\d\s,;]+", answer):
        return note
    chosen = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", answer)))
    if not chosen or any(cid not in members for cid in chosen):
        return note
    if len(chosen) == 1:
        return chosen[0], [m for m in members if m != chosen[0]], []
    return chosen[0], chosen[1:], [m for m in members if m not in chosen]


def answer_merge(store: Store, entry: ReviewEntry) -> int:
    """An admin's answer to a merge suggestion on Review: merge all, a subset, or none."""
    plan = merge_plan(entry.ref, entry.customer_text)
    if plan is None:
        for a, b in combinations(parse_merge_ref(entry.ref) or (), 2):
            store.review.dismiss_suggestion(pair_ref(a, b), entry.customer_text)
        store.review.drop_pending(entry.ref)
        return 0
    if isinstance(plan, str):
        if store.review.pending_assignments().get(entry.ref) != (entry.customer_text, plan):
            store.review.save_assignment(entry.ref, [], None, entry.customer_text, plan)
        return 0
    keep, merged, apart = plan
    for other in apart:
        store.review.dismiss_suggestion(pair_ref(other, keep), entry.customer_text)
    done = 0
    for merge_id in merged:
        try:
            moved = store.review.merge_customers(merge_id, keep)
        except StoreError as exc:
            store.review.save_assignment(entry.ref, [], None, entry.customer_text, str(exc))
            return done
        log.info("review row %d: merged customer #%d into #%d (%s)", entry.row, merge_id, keep, moved)
        done += 1
    store.review.drop_pending(entry.ref)
    return done
