"""The one config file: a TOML document validated by pydantic models.

The models are the single source of truth for validation, for ``docs/configuration.md``
and for ``config/syncd.example.toml``. The ``[[sources]]`` tables are validated by the
settings models of the kinds the registry knows (``syncd.connectors.registry``), so this
module names no source kind. Every error names the file, the key path and what is wrong,
and all errors are reported at once, because an admin fixing a config one error per
restart gives up. Unknown keys are errors (a typo'd key silently ignored is a feature
silently off). Relative paths resolve against the folder of the config file, so a config
and its workbooks can move together.
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from syncd.config_tables import (
    ManualRule,
    MatchingConfig,
    PrivacyConfig,
    ServiceConfig,
    StatusRule,
    StoreConfig,
    TimelineConfig,
)
from syncd.connectors.registry import Registry, UnknownKind
from syncd.model.settings import SecretSource, SourceSettings, StrictModel

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ManualRule",
    "MatchingConfig",
    "PrivacyConfig",
    "SecretSource",
    "ServiceConfig",
    "StatusRule",
    "StoreConfig",
    "TimelineConfig",
    "check_references",
    "config_model",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/syncd/syncd.toml")
RESERVED_SOURCE_NAMES = ("auto-contacts",)


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(Exception):
    """A config that cannot be used; carries every problem found, with its location."""

    def __init__(self, path: Path | str, problems: list[ConfigProblem]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path}: {p}" for p in self.problems]
        return "\n".join(lines)


class Config(StrictModel):
    """The whole config. ``sources`` holds the settings models of the registry's kinds; a
    parsed config remembers that registry (``kinds``), so what reads it never names a kind."""

    # Absent tables are validated from {} so their defaults see the config folder too.
    service: ServiceConfig = Field(default_factory=dict)  # type: ignore[assignment]
    store: StoreConfig = Field(default_factory=dict)  # type: ignore[assignment]
    matching: MatchingConfig = Field(default_factory=dict)  # type: ignore[assignment]
    timeline: TimelineConfig = Field(default_factory=dict)  # type: ignore[assignment]
    privacy: PrivacyConfig = Field(default_factory=dict)  # type: ignore[assignment]
    sources: list[SourceSettings] = Field(default_factory=list)
    _kinds: Registry | None = PrivateAttr(default=None)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceSettings]) -> list[SourceSettings]:
        seen: set[str] = set()
        for source in sources:
            if source.name in RESERVED_SOURCE_NAMES:
                raise ValueError(f"the source name {source.name!r} is reserved for auto-created contacts")
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice")
            seen.add(source.name)
        return sources

    @model_validator(mode="after")
    def _publish_via_a_graph_source(self) -> Config:
        publish = self.timeline.publish
        if publish is not None:
            from syncd.connectors.graph.kind import GraphAccountFields

            found = next((s for s in self.sources if s.name == publish.via), None)
            if not isinstance(found, GraphAccountFields) or getattr(found, "auth", "") != "app":
                raise ValueError(
                    f"timeline.publish.via: {publish.via!r} must name a Microsoft Graph source signed in as the app "
                    '(auth = "app")'
                )
        return self

    @property
    def kinds(self) -> Registry:
        return self._kinds if self._kinds is not None else Registry.builtin()

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        if self.store.url_secret:
            from syncd.secrets import read_secret

            return read_secret(self.store.url_secret, "store.url_secret")
        return f"sqlite:///{self.service.state_dir / 'syncd.db'}"


def output_clashes(config: Config) -> list[ConfigProblem]:
    """An output path must never be a file a source reads: syncd would overwrite a staff
    workbook (or read its own output back). Compared after resolving links."""
    inputs: dict[Path, str] = {}
    for index, source in enumerate(config.sources):
        for found in source.input_paths():
            inputs[_resolved(found.path)] = f"sources[{index}] ({source.name}).{found.key}"
    problems: list[ConfigProblem] = []
    clash = inputs.get(_resolved(config.timeline.path))
    if clash:
        problems.append(
            ConfigProblem(
                "timeline.path",
                f"{config.timeline.path} is the file {clash} reads: the "
                "timeline workbook is syncd's own file and must never be a staff file",
            )
        )
    if config.timeline.per_owner:
        folder = _resolved(config.timeline.per_owner_dir)
        for path, who in inputs.items():
            if path.parent == folder and path.name.startswith("timeline-"):
                problems.append(
                    ConfigProblem(
                        "timeline.per_owner_dir",
                        f"holds {path.name}, which {who} reads; per-owner workbooks could overwrite it",
                    )
                )
    return problems


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


@cache
def config_model(kinds: Registry) -> type[Config]:
    """The Config model whose ``sources`` are the kinds of ``kinds`` (a discriminated union on ``kind``)."""
    models = tuple(kind.settings for kind in kinds)
    if not models:
        return Config
    union: Any = Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007
    return create_model("Config", __base__=Config, sources=(list[union], Field(default_factory=list)))


def _field_names(model: type[BaseModel]) -> set[str]:
    """Every key any table of the config can hold, for "did you mean" hints."""
    names: set[str] = set()
    pending: list[Any] = [model]
    seen: set[Any] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            for name, field in current.model_fields.items():
                names.add(name)
                pending.append(field.annotation)
        else:
            pending.extend(typing.get_args(current))
    return names


def _key_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """``('sources', 1, 'maildir', 'path')`` -> ``'sources[1] (alice-mail).path'``."""
    parts: list[str] = []
    items = list(loc)
    listed = data.get("sources")
    raw_sources: list[Any] = listed if isinstance(listed, list) else []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, int):
            is_source = parts == ["sources"]
            parts[-1] += f"[{item}]"
            if is_source and item < len(raw_sources) and isinstance(raw_sources[item], dict):
                source = raw_sources[item]
                if i + 1 < len(items) and items[i + 1] == source.get("kind"):
                    i += 1  # pydantic puts the discriminator value in the path; the name says more
                if source.get("name"):
                    parts[-1] += f" ({source['name']})"
        elif not (isinstance(item, str) and item.startswith(("function-", "literal["))):
            parts.append(str(item))
        i += 1
    return ".".join(parts)


def _problem(error: Any, data: dict[str, Any], model: type[BaseModel]) -> ConfigProblem:
    key = _key_path(tuple(error["loc"]), data)
    kind = error["type"]
    if kind == "extra_forbidden":
        leaf = str(error["loc"][-1])
        # A key that exists elsewhere (a source's `name` inside its `columns`) is no hint to itself.
        close = difflib.get_close_matches(leaf, _field_names(model) - {leaf}, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ConfigProblem(key, f"unknown key{hint}")
    if kind == "missing":
        return ConfigProblem(key, "required key is missing")
    if kind == "union_tag_invalid":
        return ConfigProblem(key + ".kind", f"unknown source kind; expected one of {error['ctx']['expected_tags']}")
    if kind == "union_tag_not_found":
        return ConfigProblem(key, "the source needs a `kind`")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    got = error.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {got!r})"
    return ConfigProblem(key, message)


def parse_config(text: str, path: Path, check_files: bool = False, kinds: Registry | None = None) -> Config:
    """Validate TOML text as if it were the file ``path``; raise ConfigError with every problem.

    ``kinds``: the source kinds to accept (default: the built-in registry). With
    ``check_files`` the files, folders and secrets sources point at are checked too, even
    when the schema has errors, so `check-config` lists everything in one go.
    """
    kinds = kinds if kinds is not None else Registry.builtin()
    model = config_model(kinds)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None
    try:
        config = model.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems = [_problem(e, data, model) for e in exc.errors()]
        if check_files:
            problems += _raw_path_problems(data, path.parent, kinds)
        raise ConfigError(path, problems) from None
    config._kinds = kinds
    problems = output_clashes(config)
    if check_files:
        problems += check_references(config)
    if problems:
        raise ConfigError(path, problems)
    return config


def _raw_path_problems(data: dict[str, Any], base: Path, kinds: Registry) -> list[ConfigProblem]:
    """Missing files of sources in a config that did not validate (best effort on raw data)."""
    problems: list[ConfigProblem] = []
    listed = data.get("sources")
    sources: list[Any] = listed if isinstance(listed, list) else []
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("path"), str):
            continue
        try:
            settings = kinds.get(str(source.get("kind"))).settings
        except UnknownKind:
            continue
        try:
            partial = settings.model_construct(**{**source, "path": _raw_path(source["path"], base)})
        except Exception:  # noqa: BLE001 - a raw table may be anything
            continue
        label = f"sources[{index}] ({source.get('name', '?')})"
        for found in partial.input_paths():
            message = _missing(found.path, found.folder)
            if message:
                problems.append(ConfigProblem(f"{label}.{found.key}", message))
    return problems


def _raw_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _missing(path: Path, folder: bool) -> str | None:
    """Why ``path`` is not the file (or folder) it should be, or None."""
    try:
        if folder:
            return None if path.is_dir() else f"no such folder: {path}"
        return None if path.is_file() else f"no such file: {path}"
    except OSError as exc:  # e.g. a file name longer than the file system allows
        return f"cannot look at {path}: {exc.strerror or exc}"


def load_config(path: Path | str, check_files: bool = False, kinds: Registry | None = None) -> Config:
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read the config file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"the config file is not UTF-8: {exc.reason}")]) from None
    return parse_config(text, path, check_files, kinds)


def check_references(config: Config) -> list[ConfigProblem]:
    """Problems with what the config points at (files, folders, secrets, mapped sheets),
    found without syncing."""
    from syncd.secrets import SecretError, read_secret

    problems: list[ConfigProblem] = []
    for index, source in enumerate(config.sources):
        label = f"sources[{index}] ({source.name})"
        missing = False
        for found in source.input_paths():
            message = _missing(found.path, found.folder)
            if message:
                missing = True
                problems.append(ConfigProblem(f"{label}.{found.key}", message))
        for key, secret in source.secrets():
            try:
                read_secret(secret, f"{label}.{key}")
            except SecretError as exc:
                problems.append(ConfigProblem(f"{label}.{key}", str(exc)))
        check = config.kinds.get(source.kind).check
        if check is not None and not missing:
            problems += [ConfigProblem(f"{label}.{key}", message) for key, message in check(source)]
    if config.store.url_secret:
        try:
            read_secret(config.store.url_secret, "store.url_secret")
        except SecretError as exc:
            problems.append(ConfigProblem("store.url_secret", str(exc)))
    return problems
