"""Render docs/configuration.md from the config models, so the docs cannot drift from validation.

``python -m syncd.configdoc > docs/configuration.md``; a test fails when the file is stale.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from syncd.config import (
    Config,
    ManualRule,
    MatchingConfig,
    PrivacyConfig,
    ServiceConfig,
    StatusRule,
    StoreConfig,
    TimelineConfig,
)
from syncd.connectors.registry import Registry
from syncd.model.settings import SecretSource

PREAMBLE = """\
# Configuration reference

syncd reads one TOML file, given with `-c PATH` (default `/etc/syncd/syncd.toml`, or
`$SYNCD_CONFIG`). `syncd check-config -c PATH` validates it and everything it points at,
and lists every problem at once, each as `FILE: KEY.PATH: what is wrong`; it exits 2 when
there is any.

Rules that hold for every key:

- **Unknown keys are errors**, with the closest known key suggested (`interval_secondz`
  → "did you mean 'interval_seconds'?").
- **Relative paths** resolve against the folder holding the config file.
- **Secrets are never written inline.** Where a secret is needed, a `*_secret` table names
  exactly one of `file` (a file with mode 0600/0400; a group- or world-readable file is
  refused), `env` (an environment variable) or `credential` (a systemd credential from
  `$CREDENTIALS_DIRECTORY`, set up with `LoadCredential=`). A store URL with a password in
  it is refused.
- **Admin mapping** (which workbook, sheet and column means what) lives in this same file,
  in each source's table, so one file describes the whole deployment.

`config/syncd.example.toml` is a complete, commented example. This page is generated from
the validation models (`python -m syncd.configdoc > docs/configuration.md`).
"""

GENERAL_SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("[service]", ServiceConfig, "How the daemon runs."),
    ("[store]", StoreConfig, "Where syncd keeps what it has read."),
    ("[store.url_secret] and every other `*_secret` table", SecretSource, "Where a secret is read from."),
    ("[matching]", MatchingConfig, "How records are matched to customers."),
    ("[[matching.rules]]", ManualRule, "A manual assignment; manual rules win over every automatic rule."),
    ("[timeline]", TimelineConfig, "The timeline workbook syncd writes."),
    ("[[timeline.status]]", StatusRule, "A Status label on the Customers sheet."),
    ("[privacy]", PrivacyConfig, "What syncd collects and keeps about people (see privacy.md)."),
]


def sections(kinds: Registry) -> list[tuple[str, type[BaseModel], str]]:
    """The general tables, then one section per source kind the registry knows (and its nested tables)."""
    found = list(GENERAL_SECTIONS)
    for kind in kinds:
        summary = kind.summary
        described = kind.capabilities.describe()
        if described:
            summary += f" Capabilities: {described}."
        found.append((f'[[sources]] with kind = "{kind.name}"', kind.settings, summary))
        found.extend(kind.tables)
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names) + (" (optional)" if type(None) in typing.get_args(annotation) else "")
    if origin is typing.Literal:
        return " \\| ".join(f'"{v}"' for v in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "path"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(table)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "; ".join(", ".join(f"{k} = {v!r}" for k, v in item.model_dump().items()) for item in value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def render(kinds: Registry | None = None) -> str:
    lines = [PREAMBLE]
    for title, model, summary in sections(kinds if kinds is not None else Registry.builtin()):
        lines += [f"## {title}", "", summary, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                kind = "table"
            else:
                kind = _type_name(field.annotation)
            meaning = (field.description or "").replace("|", "\\|")
            if name == "kind":
                meaning = "The source kind."
            if name == "name" and not meaning:
                meaning = "Unique source name (letters, digits, `_ . -`); shown in status and logs."
            if name == "enabled":
                meaning = "Set to false to keep a source configured but not synced."
            if name == "owner_addresses" or name == "owner":
                meaning = meaning or "The mailbox owner's address."
            lines.append(f"| `{name}` | {kind} | {_default(field)} | {meaning} |")
        lines.append("")
    assert Config.model_fields.keys() == {"service", "store", "matching", "timeline", "privacy", "sources"}
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
