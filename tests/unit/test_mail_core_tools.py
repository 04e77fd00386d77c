"""The mail core's own tools, offline: `hopthu pki` and `hopthu-userdb`.

`hopthu pki ensure` prepares a host's certificate on the controller for both
engines: it creates the CA once, issues once, keeps the host files away
from the CA's own, and keeps the CA's CRL current; `hopthu pki crl` and
`hopthu pki revoke` sign the CRL and revoke, and change nothing on bad
input. `hopthu-userdb` (rendered from its template, run here
against a temporary directory, without password hashing) builds the user
database from its schema, says what it changed, changes nothing the second
time, and gives Postfix a copy without any secret.
"""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from hopthu import pki
from hopthu.cli import main
from hopthu.pki_command import ensure
from hopthu.render import render

NAMES = ["mail1.moj.gov.vn"]
CRL_URL = "http://pki.moj.gov.vn/hopthu-ca.crl"


def test_ensure_creates_the_ca_once_and_issues_once(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    first = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, ips=["198.18.0.10"],
                   crl_url=CRL_URL)
    assert first["changed"] and first["reason"].startswith("CA created")
    second = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, ips=["198.18.0.10"],
                    crl_url=CRL_URL)
    assert not second["changed"] and second["reason"] == "up to date"
    assert second["key_file"] == str(ca_dir / "hosts" / "mail1.key")
    pki.check_names(Path(second["fullchain_file"]), [*NAMES, "198.18.0.10"])
    pki.check_chain(Path(second["fullchain_file"]), Path(second["ca_file"]))


def test_a_host_named_ca_cannot_overwrite_the_cas_key(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=CRL_URL)
    ca_key = (ca_dir / "ca.key").read_bytes()
    result = ensure("internal", ca_dir=ca_dir, name="ca", dns=["ca.moj.gov.vn"], crl_url=CRL_URL)
    assert result["key_file"] == str(ca_dir / "hosts" / "ca.key")
    assert (ca_dir / "ca.key").read_bytes() == ca_key


def test_a_new_name_issues_a_new_certificate(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=CRL_URL)
    result = ensure("internal", ca_dir=ca_dir, name="mail1", dns=[*NAMES, "mail.moj.gov.vn"],
                    crl_url=CRL_URL)
    assert result["changed"] and "added mail.moj.gov.vn" in result["reason"]


def test_ensure_names_the_crl_in_the_certificate_and_returns_the_crl(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    result = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=CRL_URL)
    assert "CRL signed: no CRL yet" in result["reason"]
    assert result["crl_file"] == str(ca_dir / "ca.crl")
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    crl = x509.load_der_x509_crl(Path(result["crl_file"]).read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    cert = x509.load_pem_x509_certificate(Path(result["fullchain_file"]).read_bytes())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or []] == [CRL_URL]


def test_a_changed_crl_url_issues_a_new_certificate(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=CRL_URL)
    other = "http://crl.moj.gov.vn/ca.crl"
    result = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=other)
    assert result["changed"]
    assert f"CRL distribution point changed from {CRL_URL} to {other}" in result["reason"]


def test_ensure_refuses_to_issue_without_a_crl_url(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="needs --crl-url"):
        ensure("internal", ca_dir=tmp_path / "pki", name="mail1", dns=NAMES)
    assert not (tmp_path / "pki").exists(), "nothing may be written before the check"


def test_ensure_refuses_an_https_crl_url_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="must be fetchable without TLS"):
        ensure("internal", ca_dir=tmp_path / "pki", name="mail1", dns=NAMES,
               crl_url="https://pki.moj.gov.vn/hopthu-ca.crl")
    assert not (tmp_path / "pki").exists()


def test_a_ca_only_host_needs_no_crl_url(tmp_path: Path) -> None:
    result = ensure("internal", ca_dir=tmp_path / "pki", host_cert=False)
    assert result["reason"] == "CA created; CRL signed: no CRL yet"
    assert (result["key_file"], result["fullchain_file"]) == ("", "")


def test_the_command_prints_json_for_the_role(tmp_path: Path, capsys: Any) -> None:
    argv = ["pki", "ensure", "--mode", "internal", "--ca-dir", str(tmp_path / "pki"),
            "--crl-url", CRL_URL, "--name", "mail1", "--dns=mail1.moj.gov.vn",
            "--ip=198.18.0.10"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is True
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_provided_files_are_checked_and_passed_through(tmp_path: Path, capsys: Any) -> None:
    ca = pki.create_ca(tmp_path / "ca")
    host = pki.ensure_host_cert(ca, tmp_path / "h", "x", NAMES)
    result = ensure("provided", cert_file=host.fullchain_path, key_file=host.key_path,
                    ca_file=ca.cert_path, dns=NAMES)
    assert result == {"changed": False, "reason": "provided by the operator",
                      "key_file": str(host.key_path),
                      "fullchain_file": str(host.fullchain_path), "ca_file": str(ca.cert_path),
                      "crl_file": ""}
    argv = ["pki", "ensure", "--mode", "provided", "--cert", str(host.fullchain_path),
            "--key", str(host.key_path), "--ca", str(ca.cert_path), "--dns=mail9.moj.gov.vn"]
    assert main(argv) == 2
    assert "does not cover mail9.moj.gov.vn" in capsys.readouterr().err


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` and its bytes: proof that nothing was written."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """An internal CA that has issued mail1 its certificate, and its CRL."""
    directory = tmp_path / "pki"
    ensure("internal", ca_dir=directory, name="mail1", dns=NAMES, crl_url=CRL_URL)
    return directory


def serial_of(ca_dir: Path, host: str = "mail1") -> str:
    cert = x509.load_pem_x509_certificate((ca_dir / "hosts" / f"{host}.crt").read_bytes())
    return pki.serial_hex(cert.serial_number)


def test_the_crl_command_prints_the_path_and_next_update(ca_dir: Path, capsys: Any) -> None:
    before = files_of(ca_dir)
    assert main(["pki", "crl", "--ca-dir", str(ca_dir)]) == 0
    out = capsys.readouterr().out
    assert f"CRL: {ca_dir / 'ca.crl'} (DER), up to date" in out
    crl = x509.load_der_x509_crl((ca_dir / "ca.crl").read_bytes())
    assert crl.next_update_utc is not None
    assert f"next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC" in out
    assert files_of(ca_dir) == before, "a CRL within its validity must not be rewritten"


def test_the_revoke_command_puts_the_serial_on_the_crl(ca_dir: Path, capsys: Any) -> None:
    serial = serial_of(ca_dir)
    argv = ["pki", "revoke", serial, "--reason", "key_compromise", "--ca-dir", str(ca_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"revoked {serial} (mail1.moj.gov.vn): key_compromise" in out
    crl = x509.load_der_x509_crl((ca_dir / "ca.crl").read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None, "the revoked serial is not on the CRL"
    assert serial in (ca_dir / "revoked.txt").read_text()

    # The next deploy gives the host a new certificate.
    again = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, crl_url=CRL_URL)
    assert again["changed"] and "was revoked" in again["reason"]
    assert serial_of(ca_dir) != serial


@pytest.mark.parametrize(
    ("serial", "message"),
    [
        ("0BADC0FFEE", "is not a certificate this CA issued"),
        ("not-hex", "is not a certificate serial number"),
        ("0", "is not a certificate serial number"),
        ("1" * 41, "is not a certificate serial number"),
    ],
    ids=["unknown", "not-hex", "zero", "too-long"],
)
def test_revoke_refuses_a_bad_serial_and_writes_nothing(
    ca_dir: Path, capsys: Any, serial: str, message: str
) -> None:
    before = files_of(ca_dir)
    argv = ["pki", "revoke", serial, "--reason", "superseded", "--ca-dir", str(ca_dir)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert files_of(ca_dir) == before


@pytest.mark.parametrize("action", [["crl"], ["revoke", "01", "--reason", "superseded"]])
def test_crl_and_revoke_refuse_a_directory_without_a_ca(
    tmp_path: Path, capsys: Any, action: list[str]
) -> None:
    assert main(["pki", *action, "--ca-dir", str(tmp_path / "none")]) == 2
    assert "holds no internal CA" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


# --- hopthu-userdb --------------------------------------------------------------------

SETTINGS: dict[str, Any] = {
    "hopthu__mail_domain": "moj.gov.vn",
    "userdb__reader_group": grp.getgrgid(os.getgid()).gr_name,
    "userdb__passwords_enabled": False,
    "userdb__password_scheme": "ARGON2ID",
    "userdb__domains": ["moj.gov.vn"],
    "userdb__seed_accounts": [
        {"address": "an@moj.gov.vn", "password": "unused-without-hashes",
         "display_name": "Nguyễn Văn An", "kind": "personal", "quota": 1000,
         "must_change": False, "delegates": []},
        {"address": "vanphong@moj.gov.vn", "password": "unused-without-hashes",
         "display_name": "Văn phòng Bộ", "kind": "unit", "quota": 0,
         "must_change": False, "delegates": ["an@moj.gov.vn"]},
    ],
    "userdb__seed_aliases": [{"address": "lienhe@moj.gov.vn", "targets": ["an@moj.gov.vn"]}],
    # An inventory without an accounts registry (the registry tests give one).
    "userdb__registry_file": "/nonexistent/inventory/accounts.yml",
}


@pytest.fixture
def userdb_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The rendered tool as a module, pointed at a temporary schema and directory."""
    (tmp_path / "schema.sql").write_text(render("etc/hopthu/userdb/schema.sql.j2", SETTINGS))
    (tmp_path / "tool.py").write_text(render("usr/local/sbin/hopthu-userdb.j2", SETTINGS))
    conf = render("etc/hopthu/userdb/userdb.conf.j2", SETTINGS).replace(
        '"/var/lib/hopthu/userdb"', json.dumps(str(tmp_path / "db")))
    (tmp_path / "userdb.conf").write_text(conf)
    (tmp_path / "db").mkdir()
    spec = importlib.util.spec_from_file_location("hopthu_userdb", tmp_path / "tool.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SCHEMA = str(tmp_path / "schema.sql")
    # The files are the test user's, not root's. The module's `os` is this
    # process's: patched for this test only.
    monkeypatch.setattr(module.os, "chown", lambda *args: None)
    module.conf = tmp_path / "userdb.conf"
    module.db = tmp_path / "db"
    return module


def _apply(tool: Any, capsys: Any) -> list[str]:
    assert tool.main(["hopthu-userdb", "apply", str(tool.conf)]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_userdb_tool_builds_the_database_and_a_second_run_changes_nothing(
    userdb_tool: Any, capsys: Any
) -> None:
    first = _apply(userdb_tool, capsys)
    assert first[0].startswith("changed: created") and first[-1].startswith(
        "hopthu-userdb: changed")
    if os.geteuid() != 0:
        # Without root the owner check always differs; the rest must not.
        assert all("owner" in line for line in _apply(userdb_tool, capsys)[:-1])
        return
    assert _apply(userdb_tool, capsys) == ["hopthu-userdb: unchanged"]


def test_postfix_gets_the_addresses_and_no_secret(userdb_tool: Any, capsys: Any) -> None:
    _apply(userdb_tool, capsys)
    copy = sqlite3.connect(userdb_tool.db / "postfix.sqlite")
    rows = {table: sorted(copy.execute(f"SELECT * FROM {table}"))
            for table in ("domains", "mailboxes", "aliases", "sender_logins")}
    assert rows == {
        "domains": [("moj.gov.vn",)],
        "mailboxes": [("an@moj.gov.vn",), ("vanphong@moj.gov.vn",)],
        "aliases": [("lienhe@moj.gov.vn", "an@moj.gov.vn")],
        "sender_logins": [("an@moj.gov.vn", "an@moj.gov.vn"),
                          ("vanphong@moj.gov.vn", "an@moj.gov.vn"),
                          ("vanphong@moj.gov.vn", "vanphong@moj.gov.vn")],
    }
    columns = {row[1] for table in rows
               for row in copy.execute(f"PRAGMA table_info({table})")}
    assert "password" not in columns


def test_an_archived_account_receives_nothing_and_cannot_log_in(
    userdb_tool: Any, capsys: Any
) -> None:
    _apply(userdb_tool, capsys)
    users = sqlite3.connect(userdb_tool.db / "users.sqlite")
    users.execute("UPDATE accounts SET state = 'archived', password = '{X}y' "
                  "WHERE address = 'an@moj.gov.vn'")
    users.commit()
    assert users.execute("SELECT count(*) FROM login_passdb").fetchone() == (0,)
    assert [r[0] for r in users.execute("SELECT user FROM mail_userdb")] == [
        "vanphong@moj.gov.vn"]
    # The seed makes it active again: the seed describes the lab's accounts whole.
    assert "changed: account an@moj.gov.vn: state, password" in _apply(userdb_tool, capsys)


def test_the_schema_refuses_what_the_directory_must_never_hold(
    userdb_tool: Any, capsys: Any
) -> None:
    _apply(userdb_tool, capsys)
    users = sqlite3.connect(userdb_tool.db / "users.sqlite")
    bad = [
        ("INSERT INTO accounts (address, local_part, domain, kind) "
        "VALUES ('An@moj.gov.vn', 'An', 'moj.gov.vn', 'personal')"),
        ("INSERT INTO accounts (address, local_part, domain, kind, state) "
        "VALUES ('x@moj.gov.vn', 'x', 'moj.gov.vn', 'personal', 'deleted')"),
        ("INSERT INTO accounts (address, local_part, domain, kind, password) "
        "VALUES ('y@moj.gov.vn', 'y', 'moj.gov.vn', 'personal', 'cleartext')"),
        ("INSERT INTO accounts (address, local_part, domain, kind, password, quota_bytes) "
        "VALUES ('z@moj.gov.vn', 'z', 'moj.gov.vn', 'alias', '{X}y', 0)"),
    ]
    for statement in bad:
        with pytest.raises(sqlite3.IntegrityError):
            users.execute(statement)
