"""A folder's position in its source, kept as JSON and committed with every batch.

Every cursor connector (IMAP, Graph, EWS, CalDAV) keeps one per folder. The store holds
the text; the connector reads it back at the next pass. A cursor that does not parse
(an older layout, a hand-edited store) reads as none: the folder is then read afresh,
which the connectors make safe (same item keys, removals only after a full round).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Self


@dataclasses.dataclass
class JsonCursor:
    """Base of the connectors' cursors: a dataclass, dumped with sorted keys."""

    @classmethod
    def load(cls, text: str | None) -> Self | None:
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
