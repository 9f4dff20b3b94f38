"""Read models as the store hands them to the outputs, built by hand for output tests."""

from __future__ import annotations

from datetime import datetime, timezone


def activity(subject: str, customers: list[str]) -> dict:
    return {"id": 1, "kind": "email", "message_id": f"{subject}@test.example", "occurred_at": datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc),
            "direction": "inbound", "subject": subject, "snippet": "=cmd|' /C calc'!A0",
            "participants": [{"email": "ivana@adriatic.hr", "name": "", "role": "from"},
                             {"email": "alice@ourco.example", "name": "", "role": "to"}],
            "customers": [{"name": n} for n in customers],
            "seen_in": [{"source": "alice-mail", "key": "INBOX/1", "folder": "INBOX", "mailbox": "alice@ourco.example",
                         "link": None}]}
