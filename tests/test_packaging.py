"""The installed package holds every source folder, under the syncd namespace only."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"syncd": ROOT / "syncd", "syncd.connectors": ROOT / "connectors", "syncd.mapping": ROOT / "mapping"}


def _declared() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]


def test_every_folder_with_python_code_is_a_declared_package() -> None:
    found: set[str] = set()
    for name, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((name, *relative)))
    assert found == set(_declared())


def test_only_the_syncd_name_is_installed_at_the_top() -> None:
    assert {name.split(".")[0] for name in _declared()} == {"syncd"}
    tests = Path(__file__).resolve().parent
    for top_level in ("connectors", "mapping"):
        spec = importlib.util.find_spec(top_level)
        # tests/connectors (the tests of syncd.connectors) is the only thing that may answer
        locations = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
        assert spec is None or (spec.origin is None and all(tests in p.parents for p in locations)), (
            f"{top_level} importable as a top-level package from {spec.origin or locations}"
        )


def test_the_source_root_is_not_on_the_import_path() -> None:
    """Else the syncd/ folder would shadow the installed package, which alone has
    syncd.connectors and syncd.mapping (run the suite as .venv/bin/pytest)."""
    import sys

    entries = {Path(entry or ".").resolve() for entry in sys.path}
    assert ROOT not in entries
