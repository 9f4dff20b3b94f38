"""Each EWS source's TLS verification and timeout are its own, never exchangelib's process-wide defaults.

Two EWS TEST DOUBLES (tests/support/doubles/ews_double.py) serve https with self-signed
certificates that nothing trusts. The source with ``verify_tls = false`` connects; the one
without must be refused with a certificate error, in the same process, in either order,
and again after a reload (the config read afresh, the connectors made again).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.doubles.ews_double import EwsDouble
from support.doubles.tls import make_tls
from syncd.config import Config, parse_config
from syncd.model.errors import SourceSecurityError
from syncd.model.records import SourceState
from syncd.pipeline import make_connector

MAILBOX = "alice@ourco.example"
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # the lax source chose it


@pytest.fixture
def doubles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EwsDouble, EwsDouble]]:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # nothing trusts the doubles' certificates
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    started = []
    for name in ("lax", "strict"):
        _bundle, context = make_tls(tmp_path / f"tls-{name}")
        double = EwsDouble().start(tls=context)
        double.add_message(
            MAILBOX,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[MAILBOX],
            subject=f"Hello {name}",
            when="2026-11-20T09:00:00Z",
            message_id=f"{name}@adriaticfoods.hr",
        )
        started.append(double)
    yield started[0], started[1]
    for double in started:
        double.stop()


def _config(tmp_path: Path, lax: EwsDouble, strict: EwsDouble) -> Config:
    secret = tmp_path / "pw"
    secret.write_text(lax.users["svc-syncd"])
    os.chmod(secret, 0o600)

    def source(name: str, double: EwsDouble, verify: bool) -> str:
        return (
            f'[[sources]]\nname = "{name}"\nkind = "ews"\nservice_endpoint = "{double.url}"\n'
            f'username = "svc-syncd"\nauth_type = "basic"\npassword_secret = {{ file = "{secret}" }}\n'
            f'owner = "{MAILBOX}"\ncalendar = false\nfolders = ["inbox"]\nverify_tls = {str(verify).lower()}\n'
            f"timeout_seconds = 20\n"
        )

    text = '[service]\nstate_dir = "state"\n' + source("lax", lax, False) + source("strict", strict, True)
    return parse_config(text, tmp_path / "syncd.toml")


def _read(config: Config, name: str) -> list[str]:
    connector = make_connector(config, config.source(name))
    try:
        return [r.subject for batch in connector.read(SourceState({}, {})) for r in batch.records]
    finally:
        connector.close()


def _refused(config: Config, name: str) -> str:
    with pytest.raises(SourceSecurityError) as refused:
        _read(config, name)
    return str(refused.value)


def test_unverified_tls_is_one_sources_choice_before_and_after_a_reload(doubles, tmp_path: Path) -> None:
    lax, strict = doubles
    config = _config(tmp_path, lax, strict)
    assert _read(config, "lax") == ["Hello lax"]
    message = _refused(config, "strict")  # after the lax source connected, in the same process
    assert "certificate" in message and "verify_tls" in message
    assert strict.recorded() == []  # nothing reached the strict double: the handshake failed first
    reloaded = _config(tmp_path, lax, strict)
    _refused(reloaded, "strict")  # the other order this time
    assert _read(reloaded, "lax") == ["Hello lax"]
    _refused(reloaded, "strict")


def test_each_source_keeps_its_own_timeout(doubles, tmp_path: Path) -> None:
    from syncd.connectors.ews.session import source_protocol

    lax, strict = doubles
    config = _config(tmp_path, lax, strict)
    first = make_connector(config, config.source("lax"))
    try:
        account = first.session.account()  # type: ignore[attr-defined]
        other = source_protocol(account.protocol.config, verify_tls=True, timeout=5)
        assert (account.protocol.TIMEOUT, other.TIMEOUT) == (20, 5)
        assert other is not account.protocol  # not exchangelib's shared, cached protocol
        from exchangelib.protocol import BaseProtocol

        assert BaseProtocol.TIMEOUT == 120 and BaseProtocol.HTTP_ADAPTER_CLS.__name__ == "HTTPAdapter"
    finally:
        first.close()
