"""The mail core's own tools, offline: `hopthu pki ensure` and `hopthu-userdb`.

`hopthu pki ensure` prepares a host's certificate on the controller for both
engines: it creates the CA once, issues once, and keeps the host files away
from the CA's own. `hopthu-userdb` (rendered from its template, run here
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

from hopthu import pki
from hopthu.cli import main
from hopthu.pki_command import ensure
from hopthu.render import render

NAMES = ["mail1.moj.gov.vn"]


def test_ensure_creates_the_ca_once_and_issues_once(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    first = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, ips=["198.18.0.10"])
    assert first["changed"] and first["reason"].startswith("CA created")
    second = ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES, ips=["198.18.0.10"])
    assert not second["changed"] and second["reason"] == "up to date"
    assert second["key_file"] == str(ca_dir / "hosts" / "mail1.key")
    pki.check_names(Path(second["fullchain_file"]), [*NAMES, "198.18.0.10"])
    pki.check_chain(Path(second["fullchain_file"]), Path(second["ca_file"]))


def test_a_host_named_ca_cannot_overwrite_the_cas_key(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES)
    ca_key = (ca_dir / "ca.key").read_bytes()
    result = ensure("internal", ca_dir=ca_dir, name="ca", dns=["ca.moj.gov.vn"])
    assert result["key_file"] == str(ca_dir / "hosts" / "ca.key")
    assert (ca_dir / "ca.key").read_bytes() == ca_key


def test_a_new_name_issues_a_new_certificate(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pki"
    ensure("internal", ca_dir=ca_dir, name="mail1", dns=NAMES)
    result = ensure("internal", ca_dir=ca_dir, name="mail1", dns=[*NAMES, "mail.moj.gov.vn"])
    assert result["changed"] and "added mail.moj.gov.vn" in result["reason"]


def test_the_command_prints_json_for_the_role(tmp_path: Path, capsys: Any) -> None:
    argv = ["pki", "ensure", "--mode", "internal", "--ca-dir", str(tmp_path / "pki"),
            "--name", "mail1", "--dns=mail1.moj.gov.vn", "--ip=198.18.0.10"]
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
                      "fullchain_file": str(host.fullchain_path), "ca_file": str(ca.cert_path)}
    argv = ["pki", "ensure", "--mode", "provided", "--cert", str(host.fullchain_path),
            "--key", str(host.key_path), "--ca", str(ca.cert_path), "--dns=mail9.moj.gov.vn"]
    assert main(argv) == 2
    assert "does not cover mail9.moj.gov.vn" in capsys.readouterr().err


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
}


@pytest.fixture
def userdb_tool(tmp_path: Path) -> Any:
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
    module.os.chown = lambda *args: None  # the files are the test user's, not root's
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
