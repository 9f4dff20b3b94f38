"""Marks syncd leaves where staff work, so it never reads its own writes back as data.

They are shared vocabulary because the output that writes a mark and the connector that
must skip it are in different rooms (a contact note is rendered by ``syncd.outputs`` and
skipped by the Graph and EWS contact readers).
"""

from __future__ import annotations

#: First line of the notes of every customer contact syncd writes (Outlook contacts).
NOTE_MARKER = "[syncd] Customer timeline"

#: Category syncd puts on the customer contacts it writes through EWS.
SYNCD_CATEGORY = "syncd"

#: Outlook categories staff use to mark an item private (Graph v1.0 has no message
#: sensitivity without extended properties; a category is how users say "not for the CRM").
PRIVATE_CATEGORIES = frozenset({"private", "privat", "privé", "privato", "privado", "confidential", "personal"})

#: Name of the hint that carries a sheet row's customer name to matching.
HINT_CUSTOMER_REF = "customer-ref"
