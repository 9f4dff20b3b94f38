"""A customer's recent timeline as plain text, for the notes of a contact written back to a mailbox.

The text depends only on the store's content (no "updated at" line), so an unchanged
timeline renders byte for byte the same and its hash says nothing needs writing.
"""

from __future__ import annotations

import hashlib
from datetime import tzinfo

from syncd.model.markers import NOTE_MARKER
from syncd.model.records import CustomerNote
from syncd.model.views import CustomerTimeline
from syncd.outputs.cells import plain_text

ARROWS = {"inbound": "from them", "outbound": "to them", "internal": "internal", "unknown": ""}


def render_note(customer: CustomerTimeline, zone: tzinfo) -> CustomerNote:
    lines = [NOTE_MARKER, "Kept up to date by syncd; edits here are replaced.", ""]
    for activity in customer.activities:
        when = activity.occurred_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        kind = f"{activity.kind} (cancelled)" if activity.cancelled else activity.kind
        direction = ARROWS.get(activity.direction, "") if activity.kind == "email" else ""
        subject = " ".join(str(activity.subject or "(no subject)").split())[:200]
        lines.append(f"{when}  {kind}{' ' + direction if direction else ''}: {subject}")
    if not customer.activities:
        lines.append("(no activities)")
    # The contact's name and company are cells when Outlook contacts are exported to a
    # spreadsheet: quoted like every cell syncd writes.
    return CustomerNote(
        name=plain_text(customer.name),
        text="\n".join(lines),
        emails=customer.emails,
        company=plain_text(customer.company) if customer.company else None,
    )


def note_hash(note: CustomerNote) -> str:
    return hashlib.sha256("\x1f".join([note.name, note.text, *note.emails, note.company or ""]).encode()).hexdigest()
