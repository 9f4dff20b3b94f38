"""Links between activities and customers: setting them, and re-matching stored activities.

A link carries the rule that made it, its confidence and its evidence, so staff can see
why an activity belongs to a customer (`syncd explain`). When customers or rules change,
stored activities are matched again from the store; no source is read again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.orm import Session

from syncd.model.records import LinkSpec, Participant, Role
from syncd.store.engine import StorePart
from syncd.store.schema import ActivityRow, CustomerRow, IdentityRow, LinkRow

#: Links one activity (its participants and hints) to customers: the pipeline's matcher.
LinkFunction = Callable[[tuple[Participant, ...], dict[str, str]], list[LinkSpec]]
RESCOPE_LIMIT = 200  # customers changed in one pass above which every activity is re-matched


def participants_from_json(rows: Any) -> tuple[Participant, ...]:
    """The participants column (JSON objects) as records' ``Participant``s."""
    return tuple(Participant(r["email"], r.get("name", ""), Role(r.get("role", "to"))) for r in rows or [])


def set_links(s: Session, activity_id: int, links: Sequence[LinkSpec]) -> bool:
    current = {r.customer_id: r for r in s.scalars(select(LinkRow).where(LinkRow.activity_id == activity_id))}
    wanted = {spec.customer_id: spec for spec in links}
    changed = False
    for customer_id, row in current.items():
        spec = wanted.get(customer_id)
        if spec is None:
            s.delete(row)
            changed = True
        elif (row.rule, row.confidence, row.evidence) != (spec.rule, spec.confidence, spec.evidence):
            row.rule, row.confidence, row.evidence = spec.rule, spec.confidence, spec.evidence
            changed = True
    for customer_id, spec in wanted.items():
        if customer_id not in current:
            s.add(
                LinkRow(
                    activity_id=activity_id,
                    customer_id=customer_id,
                    rule=spec.rule,
                    confidence=spec.confidence,
                    evidence=spec.evidence,
                )
            )
            changed = True
    return changed


class Links(StorePart):
    """Re-matching what the store holds."""

    def rematch(self, link: LinkFunction, since: datetime | None = None) -> int:
        """Recompute the links of stored activities after customers or rules changed, without
        reading any source again. Returns how many activities' links changed.

        ``since``: only what the customers changed since then can affect, namely unmatched
        activities, activities linked to those customers, and activities mentioning one of
        their addresses or domains (or carrying phones, when phones changed). A large change
        (an import) re-matches everything, which is then cheaper than the search.
        """
        changed = 0
        with self.session() as s, s.begin():
            query = select(ActivityRow).where(ActivityRow.gone_at.is_(None))
            if since is not None:
                scope = _rematch_scope(s, since)
                if scope is not None:
                    query = query.where(scope)
            for activity in s.scalars(query):
                links = link(participants_from_json(activity.participants), activity.hints)
                if set_links(s, activity.id, links):
                    changed += 1
        return changed


def _rematch_scope(s: Session, since: datetime) -> Any:
    """The activities customers changed since ``since`` can affect, as a WHERE clause, or
    None when so many changed that re-matching all is the better plan."""
    customer_ids = list(s.scalars(select(CustomerRow.id).where(CustomerRow.updated_at >= since)))
    if len(customer_ids) > RESCOPE_LIMIT:
        return None
    conditions: list[Any] = [ActivityRow.id.not_in(select(LinkRow.activity_id))]
    if customer_ids:
        conditions.append(ActivityRow.id.in_(select(LinkRow.activity_id).where(LinkRow.customer_id.in_(customer_ids))))
        participants = cast(ActivityRow.participants, Text)
        phones = False
        for kind, value in s.execute(
            select(IdentityRow.kind, IdentityRow.value).where(IdentityRow.customer_id.in_(customer_ids))
        ):
            if kind == "email":
                conditions.append(participants.contains(f'"{value}"', autoescape=True))
            elif kind == "domain":
                conditions.append(participants.contains(f'{value}"', autoescape=True))
            elif kind == "phone":
                phones = True
        if phones:
            conditions.append(cast(ActivityRow.hints, Text).contains('"phones"', autoescape=True))
    return or_(*conditions)
