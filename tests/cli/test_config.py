"""Config validation: every problem reported at once, each with file and key path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.helpers import write_config
from syncd.cli import main
from syncd.config import ConfigError, check_references, load_config, parse_config
from syncd.secrets import SecretError, read_secret

GOOD = """
[service]
state_dir = "state"
[matching]
internal_domains = ["OurCo.example"]
[[sources]]
name = "alice"
kind = "maildir"
path = "mail/alice"
owner = "Alice@OurCo.example"
"""


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "syncd.toml", GOOD))
    assert config.service.state_dir == tmp_path / "state"
    assert config.sources[0].path == tmp_path / "mail" / "alice"
    assert config.sources[0].owner == "alice@ourco.example"
    assert config.matching.internal_domains == ["ourco.example"]
    assert config.store_url == f"sqlite:///{tmp_path / 'state' / 'syncd.db'}"
    # A default path (no [timeline] table) resolves against the config folder too, not the cwd.
    assert config.timeline.path == tmp_path / "timeline.xlsx"


def test_typo_wrong_type_and_missing_file_are_all_reported_with_locations(tmp_path: Path, capsys) -> None:
    path = write_config(
        tmp_path / "syncd.toml",
        """
[service]
interval_secondz = 60
batch_size = "lots"
[[sources]]
name = "alice"
kind = "maildir"
path = "no/such/maildir"
owner = "alice@ourco.example"
""",
    )
    code = main(["check-config", "-c", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}: 3 problem(s)" in err
    assert f"{path}: service.interval_secondz: unknown key (did you mean 'interval_seconds'?)" in err
    assert f"{path}: service.batch_size: Input should be a valid integer" in err and "'lots'" in err
    assert f"{path}: sources[0] (alice).path: no such folder: {tmp_path / 'no/such/maildir'}" in err


def test_check_config_checks_files_of_a_valid_config_too(tmp_path: Path, capsys) -> None:
    path = write_config(tmp_path / "syncd.toml", GOOD)
    assert main(["check-config", "-c", str(path)]) == 2
    assert f"{path}: sources[0] (alice).path: no such folder" in capsys.readouterr().err
    (tmp_path / "mail" / "alice" / "cur").mkdir(parents=True)
    assert main(["check-config", "-c", str(path)]) == 0
    assert "OK (1 sources)" in capsys.readouterr().out


def test_three_problems_in_one_file_are_listed_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            """
[timeline]
pathh = "x.xlsx"
[service]
batch_size = "many"
[[sources]]
name = "c"
kind = "excel_customers"
path = "c.xlsx"
[sources.columns]
emial = "Email"
""",
            tmp_path / "syncd.toml",
        )
    keys = [p.key for p in caught.value.problems]
    assert "timeline.pathh" in keys
    assert "service.batch_size" in keys
    assert "sources[0] (c).columns.emial" in keys
    assert all(str(tmp_path / "syncd.toml") in line for line in caught.value.render().splitlines())


def test_unknown_source_kind_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[[sources]]\nname = "x"\nkind = "pop3"\n', tmp_path / "c.toml")
    assert caught.value.problems[0].key == "sources[0] (x).kind"
    assert "maildir" in caught.value.problems[0].message


def test_inline_database_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[store]\nurl = "postgresql://syncd:hunter2@db/syncd"\n', tmp_path / "c.toml")
    assert "url_secret" in str(caught.value)
    assert "store.url" == caught.value.problems[0].key


def test_duplicate_source_names_and_bad_toml(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("[[sources]]")[1].join(["[[sources]]", ""])
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(text, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[service\n", tmp_path / "c.toml")


def test_missing_config_file_is_a_config_error(tmp_path: Path, capsys) -> None:
    assert main(["status", "-c", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("sqlite:///x.db\n")
    os.chmod(secret, 0o644)
    config = parse_config(f'[store.url_secret]\nfile = "{secret}"\n', tmp_path / "c.toml")
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret(config.store.url_secret, "store.url_secret")
    assert [p.key for p in check_references(config)] == ["store.url_secret"]
    os.chmod(secret, 0o600)
    assert config.store_url == "sqlite:///x.db"


def test_secret_from_env_and_credentials_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_DB", "sqlite:///env.db")
    config = parse_config('[store.url_secret]\nenv = "SYNCD_DB"\n', tmp_path / "c.toml")
    assert config.store_url == "sqlite:///env.db"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "db").write_text("sqlite:///cred.db")
    os.chmod(creds / "db", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = parse_config('[store.url_secret]\ncredential = "db"\n', tmp_path / "c.toml")
    assert config.store_url == "sqlite:///cred.db"
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config('[store.url_secret]\nenv = "A"\ncredential = "db"\n', tmp_path / "c.toml")


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "syncd.example.toml"
    config = load_config(example)
    assert {s.kind for s in config.sources} >= {"maildir", "mbox", "excel_customers"}


def test_configuration_reference_is_generated_from_the_models() -> None:
    from syncd.configdoc import render

    doc = Path(__file__).parents[2] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == render(), "run: python -m syncd.configdoc > docs/configuration.md"


def test_a_key_known_elsewhere_is_not_suggested_as_its_own_fix(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "customers.xlsx").write_bytes(b"")
    path = write_config(
        tmp_path / "syncd.toml",
        '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
        '[sources.columns]\nname = "Name"\ncompany = "Company"\n',
    )
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sources[0] (customers).columns.name: unknown key" in err
    assert "did you mean 'name'" not in err
