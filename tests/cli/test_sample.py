"""The bundled sample is what the generator makes, and has the cases the demo promises."""

from __future__ import annotations

import hashlib
from pathlib import Path

from syncd.sample.generate import DATA, generate


def digest(root: Path, skip_suffix: str = ".xlsx") -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != skip_suffix
    }


def test_generator_is_deterministic_and_matches_the_shipped_sample(tmp_path: Path) -> None:
    generate(tmp_path / "a")
    assert digest(tmp_path / "a") == digest(DATA)
    messages = [p for p in (tmp_path / "a" / "mail").rglob("*") if p.is_file()]
    assert len(messages) >= 200
    assert {p.parent.parent.name for p in messages} >= {"alice", "bob", ".Sent"}
