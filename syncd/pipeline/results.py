"""What a pass reports: per source, and for the pass as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SourceResult:
    name: str
    kind: str
    ok: bool = True
    error: str | None = None
    new: int = 0
    updated: int = 0
    removed: int = 0
    quarantined: int = 0
    skipped: int = 0
    outside_window: int = 0  # listed by the source, older than the backfill window, not read
    customers_changed: int = 0
    suspect: str | None = None
    seconds: float = 0.0
    interrupted: bool = False
    written_back: int = 0


@dataclass
class PassResult:
    sources: list[SourceResult] = field(default_factory=list)
    timeline_written: bool = False
    timeline_path: str = ""
    rematched: int = 0
    timeline_retry_in: float | None = None  # a write was held back by timeline.min_interval_seconds
    learned: int = 0
    output_errors: list[str] = field(default_factory=list)  # outputs that could not be written this pass

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources) and not self.output_errors
