"""IMAP source config, secrets and tokens, keywords: the parts that need no server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from syncd.config import ConfigError, parse_config
from syncd.connectors.base import ConnectorContext
from syncd.connectors.imap.connector import FolderCursor
from syncd.connectors.imap.kind import imap_account
from syncd.model.settings import LabelWriting
from syncd.outputs.labels import assign_keywords, keyword_for, render_labels
from syncd.pipeline import warn_insecure
from syncd.secrets import read_secret

BASE = """
[[sources]]
name = "m"
kind = "imap"
host = "{host}"
username = "alice@ourco.example"
owner = "alice@ourco.example"
"""


def test_auth_is_exactly_one_of_password_or_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of password_secret or oauth2_token_command"):
        parse_config(BASE.format(host="mail.example.com"), tmp_path / "c.toml")
    config = parse_config(
        BASE.format(host="mail.example.com") + 'password_secret = { env = "PW" }\n', tmp_path / "c.toml"
    )
    assert config.sources[0].effective_port == 993


def test_plain_text_only_on_loopback(tmp_path: Path) -> None:
    extra = 'password_secret = { env = "PW" }\ntls = "none"\n'
    with pytest.raises(ConfigError, match="only for a server on loopback"):
        parse_config(BASE.format(host="mail.example.com") + extra, tmp_path / "c.toml")
    assert parse_config(BASE.format(host="127.0.0.1") + extra, tmp_path / "c.toml").sources[0].effective_port == 143


def test_token_command_supplies_the_xoauth2_token(tmp_path: Path) -> None:
    text = (
        BASE.format(host="outlook.office365.com")
        + f'oauth2_token_command = ["{sys.executable}", "-c", "print(\\"token-123\\")"]\n'
    )
    account = imap_account(parse_config(text, tmp_path / "c.toml").sources[0], ConnectorContext(secret=read_secret))
    assert account.password is None and account.oauth2_token is not None
    assert account.oauth2_token() == "token-123"


def test_password_comes_from_the_secret_when_needed(tmp_path: Path, monkeypatch) -> None:
    text = BASE.format(host="mail.example.com") + 'password_secret = { env = "SYNCD_TEST_PW" }\n'
    account = imap_account(parse_config(text, tmp_path / "c.toml").sources[0], ConnectorContext(secret=read_secret))
    monkeypatch.setenv("SYNCD_TEST_PW", "s3cret")
    assert account.password is not None and account.password() == "s3cret"


def test_unverified_tls_is_warned_about_at_start(tmp_path: Path, caplog) -> None:
    text = BASE.format(host="mail.example.com") + 'password_secret = { env = "PW" }\nverify_tls = false\n'
    with caplog.at_level(logging.WARNING):
        warn_insecure(parse_config(text, tmp_path / "c.toml"))
    assert "TLS certificate verification is OFF for mail.example.com" in caplog.text


@pytest.mark.parametrize(
    "name, keyword",
    [
        ("Adriatic Foods d.o.o.", "$crm_adriatic_foods_d_o_o"),
        ("Łódź Print Sp. z o.o.", "$crm_lodz_print_sp_z_o_o"),
        ("Łukasz Nowak", "$crm_lukasz_nowak"),
        ("Straße & Söhne", "$crm_strasse_sohne"),
        ("Ђорђе Петровић", "$crm_djordje_petrovic"),
        ("Nordic Retail AB", "$crm_nordic_retail_ab"),
    ],
)
def test_keywords_are_valid_prefixed_atoms(name: str, keyword: str) -> None:
    result = keyword_for(name, "$crm_")
    assert result == keyword
    assert all(c.isalnum() or c in "$_" for c in result) and len(result) <= 64


def test_unreadable_cursor_means_resync() -> None:
    assert FolderCursor.load("{not json") is None
    cursor = FolderCursor(v=7, high=10, below=3)
    assert FolderCursor.load(cursor.dump()) == cursor


def test_names_without_ascii_get_distinct_stable_keywords() -> None:
    first, second = keyword_for("Ђорђе Петровић", "$crm_"), keyword_for("شرکت پارس", "$crm_")
    assert first != second and first == keyword_for("Ђорђе Петровић", "$crm_")
    assert first.isascii() and second.isascii()
    assert keyword_for("★★★", "$crm_").startswith("$crm_c")  # nothing to transliterate: a hash


def test_colliding_names_get_distinct_keywords_and_the_oldest_keeps_its_own() -> None:
    before = assign_keywords([(1, "Müller GmbH"), (2, "Acme")], "$crm_")
    after = assign_keywords([(1, "Müller GmbH"), (2, "Acme"), (3, "Muller GmbH"), (4, "MÜLLER GMBH")], "$crm_")
    assert before["Müller GmbH"] == after["Müller GmbH"] == "$crm_muller_gmbh"
    assert len({after["Müller GmbH"], after["Muller GmbH"], after["MÜLLER GMBH"]}) == 3
    assert all(k.startswith("$crm_muller_gmbh_") for k in (after["Muller GmbH"], after["MÜLLER GMBH"]))
    assert all(len(k) <= 64 and all(c.isalnum() or c in "$_" for c in k) for k in after.values())
    # Rendering uses the book; a name outside it still gets its plain atom.
    writing = LabelWriting(style="keyword", prefix="$crm_")
    assert render_labels(["Muller GmbH", "New Co"], writing, after) == (after["Muller GmbH"], "$crm_new_co")
