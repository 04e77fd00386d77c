"""hopthu-userdb's registry phase, run as a module against a temporary
database: create with an initial password and the must-change flag, update,
disable, archive (refused or forwarded), restore, rename (the former address
stays an alias, the maildir moves), leaving the registry (archived, never
deleted), the audit log, the support desk's reset, idempotence, and --check.

Hashing is faked (no doveadm here); the lab tests use the real one.
Controls: ART6-LIFECYCLE, ART6-ARCHIVE, ART11-3-ISSUE, ART14-FIRST-LOGIN, ART14-RESET.
"""

from __future__ import annotations

import copy
import grp
import importlib.util
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu.render import render

REGISTRY: list[dict[str, Any]] = [
    {"address": "anvn@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00017",
     "unit": "Cục Công nghệ thông tin", "display_name": "Nguyễn Văn An", "quota": "1 GiB"},
    {"address": "binhtt@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00018",
     "unit": "Văn phòng Bộ", "display_name": "Trần Thị Bình", "quota": "1 GiB"},
    {"address": "vanphong@moj.gov.vn", "kind": "unit", "unit": "Văn phòng Bộ",
     "display_name": "Văn phòng Bộ", "owner": "binhtt@moj.gov.vn",
     "delegates": ["anvn@moj.gov.vn"], "quota": "2 GiB"},
    {"address": "lienhe@moj.gov.vn", "kind": "alias", "unit": "Văn phòng Bộ",
     "display_name": "Liên hệ", "targets": ["vanphong@moj.gov.vn"]},
]


@pytest.fixture(autouse=True)
def no_chown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files are the test user's, not root's. The tool's `os` is this process's
    module: patched for each test only, or every later test of the run loses os.chown."""
    monkeypatch.setattr(os, "chown", lambda *args: None)


class Host:
    """The rendered tool as a module, with its database, maildirs and logs in tmp."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.inventory = tmp / "inventory"
        self.inventory.mkdir()
        self.db = tmp / "db"
        self.db.mkdir()
        self.vmail = tmp / "vmail"
        self.audit = tmp / "log" / "accounts.log"
        self.settings: dict[str, Any] = {
            "hopthu__mail_domain": "moj.gov.vn",
            "userdb__reader_group": grp.getgrgid(os.getgid()).gr_name,
            "userdb__passwords_enabled": True,
            "userdb__password_scheme": "ARGON2ID",
            "userdb__domains": ["moj.gov.vn"],
            "userdb__registry_file": str(self.inventory / "accounts.yml"),
            "userdb__seed_accounts": [],
            "userdb__seed_aliases": [],
        }
        (tmp / "schema.sql").write_text(render("etc/hopthu/userdb/schema.sql.j2", self.settings))
        (tmp / "tool.py").write_text(render("usr/local/sbin/hopthu-userdb.j2", self.settings))
        spec = importlib.util.spec_from_file_location("hopthu_userdb_registry", tmp / "tool.py")
        assert spec is not None and spec.loader is not None
        self.tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.tool)
        self.tool.SCHEMA = str(tmp / "schema.sql")
        # A fake, reversible "hash": enough to tell which password was set.
        self.tool.hash_password = lambda secret, scheme: "{PLAIN}" + secret
        self.tool.password_matches = lambda stored, secret: stored == "{PLAIN}" + secret
        self.tool.hash_initial = lambda secrets: ["{PLAIN}" + s for s in secrets]

    def registry(self, entries: list[dict[str, Any]]) -> None:
        (self.inventory / "accounts.yml").write_text(
            yaml.safe_dump({"accounts": entries}, allow_unicode=True, sort_keys=False),
            encoding="utf-8")
        conf = render("etc/hopthu/userdb/userdb.conf.j2", self.settings)
        conf = conf.replace('"/var/lib/hopthu/userdb"', json.dumps(str(self.db)))
        conf = conf.replace('"/var/log/hopthu/accounts.log"', json.dumps(str(self.audit)))
        conf = conf.replace('"/var/vmail/%d/%n"', json.dumps(str(self.vmail) + "/%d/%n"))
        (self.tmp / "userdb.conf").write_text(conf)

    def apply(self, capsys: Any, *extra: str) -> list[str]:
        argv = ["hopthu-userdb", "apply", str(self.tmp / "userdb.conf"),
                "--commit", "abc123", "--operator", "tester", *extra]
        assert self.tool.main(argv) == 0, capsys.readouterr().err
        return [line for line in capsys.readouterr().out.splitlines()
                if "owner root:" not in line]  # not root: the owner always differs

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db / "users.sqlite") as db:
            return db.execute(query, args).fetchall()

    def postfix(self, table: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db / "postfix.sqlite") as db:
            return sorted(db.execute(f"SELECT * FROM {table}"))

    def password_files(self) -> list[Path]:
        return sorted((self.db / "initial-passwords").glob("*.txt"))

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    host = Host(tmp_path)
    host.registry(copy.deepcopy(REGISTRY))
    return host


@pytest.mark.control("ART11-3-ISSUE")
@pytest.mark.control("ART14-FIRST-LOGIN")
def test_create_issues_initial_passwords_once_to_a_private_file(host: Host, capsys: Any) -> None:
    out = host.apply(capsys)
    assert "changed: account anvn@moj.gov.vn: created (personal, active, initial password " \
           "issued, must change)" in out
    assert "changed: account lienhe@moj.gov.vn: created (alias, active)" in out
    [file] = host.password_files()
    assert file.stat().st_mode & 0o777 == 0o600
    assert (host.db / "initial-passwords").stat().st_mode & 0o777 == 0o700
    lines = [line.split("\t") for line in file.read_text().splitlines()
             if not line.startswith("#")]
    assert [address for address, _ in lines] == [
        "anvn@moj.gov.vn", "binhtt@moj.gov.vn", "vanphong@moj.gov.vn"]
    for address, secret in lines:
        assert re.fullmatch(r"([2-9a-km-zA-HJ-NP-Z]{5}-){3}[2-9a-km-zA-HJ-NP-Z]{5}", secret)
        # Stored as a hash with must_change; never printed.
        assert host.sql("SELECT password, must_change FROM accounts WHERE address = ?",
                        address) == [("{PLAIN}" + secret, 1)]
        assert secret not in "\n".join(out)
        assert secret not in host.audit.read_text()
    assert len({s for _, s in lines}) == 3
    # Dovecot refuses them with the portal's reason until they change it.
    assert host.sql("SELECT user, nologin, reason FROM login_passdb ORDER BY user") == [
        (a, "Y", "Change your initial password in the password portal first")
        for a, _ in lines]
    # A second run changes nothing and issues no password.
    assert host.apply(capsys) == ["hopthu-userdb: unchanged"]
    assert len(host.password_files()) == 1


@pytest.mark.control("ART13-DELEGATE")
def test_unit_mailbox_owner_and_delegates_may_send_as_it(host: Host, capsys: Any) -> None:
    host.apply(capsys)
    assert ("vanphong@moj.gov.vn", "binhtt@moj.gov.vn") in host.postfix("sender_logins")
    assert ("vanphong@moj.gov.vn", "anvn@moj.gov.vn") in host.postfix("sender_logins")
    assert [r for r in host.postfix("sender_logins") if r[0] == "vanphong@moj.gov.vn"] == [
        ("vanphong@moj.gov.vn", "anvn@moj.gov.vn"), ("vanphong@moj.gov.vn", "binhtt@moj.gov.vn"),
        ("vanphong@moj.gov.vn", "vanphong@moj.gov.vn")]
    assert host.postfix("aliases") == [("lienhe@moj.gov.vn", "vanphong@moj.gov.vn")]


@pytest.mark.control("ART6-LIFECYCLE")
@pytest.mark.control("ART6-ARCHIVE")
def test_archive_refuses_then_forwards_then_restores(host: Host, capsys: Any) -> None:
    host.apply(capsys)
    entries = copy.deepcopy(REGISTRY)
    entries[0]["state"] = "archived"
    entries[2]["delegates"] = []
    host.registry(entries)
    out = host.apply(capsys)
    assert "changed: account anvn@moj.gov.vn: state 'active' -> 'archived'" in out
    assert host.postfix("archived") == [(
        "anvn@moj.gov.vn", ("550 5.1.6 <anvn@moj.gov.vn>: this mailbox was archived and "
        "receives no more mail; write to its unit instead"))]
    assert ("anvn@moj.gov.vn",) not in host.postfix("mailboxes")
    assert host.sql("SELECT count(*) FROM login_passdb WHERE user = 'anvn@moj.gov.vn'") == [(0,)]
    # Its row, its password hash and (on the host) its mail are kept.
    assert host.sql("SELECT state, password IS NOT NULL FROM accounts WHERE address = ?",
                    "anvn@moj.gov.vn") == [("archived", 1)]
    entries[0]["forward_to"] = "vanphong@moj.gov.vn"
    host.registry(entries)
    host.apply(capsys)
    assert host.postfix("archived") == []
    assert ("anvn@moj.gov.vn", "vanphong@moj.gov.vn") in host.postfix("aliases")
    host.registry(copy.deepcopy(REGISTRY))
    out = host.apply(capsys)
    assert any(line.startswith("changed: account anvn@moj.gov.vn: state 'archived' -> 'active'")
               for line in out), out
    assert ("anvn@moj.gov.vn",) in host.postfix("mailboxes")
    assert host.postfix("archived") == []
    operations = [(r["operation"], r["address"]) for r in host.audit_records()]
    assert ("archive", "anvn@moj.gov.vn") in operations
    assert ("restore", "anvn@moj.gov.vn") in operations
    assert {(r["commit"], r["operator"]) for r in host.audit_records()} == {("abc123", "tester")}


@pytest.mark.control("ART6-LIFECYCLE")
def test_disable_keeps_delivery_and_refuses_login(host: Host, capsys: Any) -> None:
    host.apply(capsys)
    entries = copy.deepcopy(REGISTRY)
    entries[1]["state"] = "disabled"
    entries[2]["owner"] = "anvn@moj.gov.vn"
    entries[2]["delegates"] = []
    host.registry(entries)
    host.apply(capsys)
    assert ("binhtt@moj.gov.vn",) in host.postfix("mailboxes")
    assert host.sql("SELECT count(*) FROM login_passdb WHERE user = 'binhtt@moj.gov.vn'") == [(0,)]
    assert ("binhtt@moj.gov.vn", "binhtt@moj.gov.vn") not in host.postfix("sender_logins")
    assert host.audit_records()[-1]["operation"] in ("disable", "update")


@pytest.mark.control("ART6-LIFECYCLE")
def test_rename_moves_the_mail_and_keeps_the_old_address_as_an_alias(host: Host,
                                                                     capsys: Any) -> None:
    host.apply(capsys)
    old_home = host.vmail / "moj.gov.vn" / "anvn" / "Maildir" / "cur"
    old_home.mkdir(parents=True)
    (old_home / "1.msg").write_text("Subject: giữ lại\n\nnội dung\n")
    before = host.sql("SELECT password FROM accounts WHERE address = 'anvn@moj.gov.vn'")
    entries = copy.deepcopy(REGISTRY)
    entries[0]["address"] = "annv@moj.gov.vn"
    entries[0]["previous"] = ["anvn@moj.gov.vn"]
    entries[2]["delegates"] = ["annv@moj.gov.vn"]
    host.registry(entries)
    out = host.apply(capsys)
    assert "changed: account anvn@moj.gov.vn: renamed to annv@moj.gov.vn" in out
    assert (host.vmail / "moj.gov.vn" / "annv" / "Maildir" / "cur" / "1.msg").read_text() == \
        "Subject: giữ lại\n\nnội dung\n"
    assert not (host.vmail / "moj.gov.vn" / "anvn").exists()
    # The same account: its password is kept, and no new one is issued.
    assert host.sql("SELECT password FROM accounts WHERE address = 'annv@moj.gov.vn'") == before
    assert len(host.password_files()) == 1
    assert ("anvn@moj.gov.vn", "annv@moj.gov.vn") in host.postfix("aliases")
    assert ("vanphong@moj.gov.vn", "annv@moj.gov.vn") in host.postfix("sender_logins")
    assert host.apply(capsys) == ["hopthu-userdb: unchanged"]


@pytest.mark.control("ART6-ARCHIVE")
def test_a_mailbox_that_leaves_the_registry_is_archived_not_deleted(host: Host,
                                                                    capsys: Any) -> None:
    host.apply(capsys)
    host.registry(copy.deepcopy(REGISTRY[:2]))
    out = host.apply(capsys)
    assert "changed: account vanphong@moj.gov.vn: archived (no longer in the registry; its " \
           "mail is kept)" in out
    assert "changed: alias lienhe@moj.gov.vn: removed (no longer in the registry)" in out
    assert host.sql("SELECT state FROM accounts WHERE address = 'vanphong@moj.gov.vn'") == [
        ("archived",)]
    assert host.apply(capsys) == ["hopthu-userdb: unchanged"]


def test_check_reports_and_changes_nothing(host: Host, capsys: Any) -> None:
    out = host.apply(capsys, "--check")
    assert out[-1] == "hopthu-userdb: changed (1)" or out[-1].startswith("hopthu-userdb: changed")
    assert not (host.db / "users.sqlite").exists()
    host.apply(capsys)
    entries = copy.deepcopy(REGISTRY)
    entries[0]["display_name"] = "Nguyễn Văn Ân"
    host.registry(entries)
    out = host.apply(capsys, "--check")
    assert "changed: account anvn@moj.gov.vn: display_name 'Nguyễn Văn An' -> " \
           "'Nguyễn Văn Ân'" in out
    assert host.sql("SELECT display_name FROM accounts WHERE address = 'anvn@moj.gov.vn'") == [
        ("Nguyễn Văn An",)]
    assert len(host.password_files()) == 1


@pytest.mark.control("ART14-RESET")
def test_reset_gives_a_new_must_change_password_and_logs_the_ticket(host: Host,
                                                                   capsys: Any) -> None:
    host.apply(capsys)
    host.sql("UPDATE accounts SET password = '{PLAIN}chosen-by-user', must_change = 0 "
             "WHERE address = 'anvn@moj.gov.vn'")
    conf = str(host.tmp / "userdb.conf")
    assert host.tool.main(["hopthu-userdb", "reset-password", conf, "anvn@moj.gov.vn",
                           "--ticket", "CV-2026-118", "--operator", "helpdesk"]) == 0
    out = capsys.readouterr().out
    assert "password reset (ticket CV-2026-118), must change" in out
    newest = host.password_files()[-1]
    [(address, secret)] = [tuple(line.split("\t")) for line in newest.read_text().splitlines()
                           if not line.startswith("#")]
    assert address == "anvn@moj.gov.vn" and secret not in out
    assert host.sql("SELECT password, must_change FROM accounts WHERE address = ?",
                    address) == [("{PLAIN}" + secret, 1)]
    record = host.audit_records()[-1]
    assert (record["operation"], record["ticket"], record["operator"]) == (
        "reset-password", "CV-2026-118", "helpdesk")
    # An alias or an unknown address gets no password, and nothing changes.
    assert host.tool.main(["hopthu-userdb", "reset-password", conf, "lienhe@moj.gov.vn",
                           "--ticket", "X"]) == 1
    assert "is not a mailbox of this host" in capsys.readouterr().err


def test_a_failed_run_leaves_no_password_file_and_no_account(host: Host, capsys: Any) -> None:
    def broken(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    host.tool.Run.refresh_postfix = broken
    assert host.tool.main(["hopthu-userdb", "apply", str(host.tmp / "userdb.conf")]) == 1
    assert "disk I/O error" in capsys.readouterr().err
    assert host.password_files() == []
    assert host.sql("SELECT count(*) FROM accounts") == [(0,)]


def test_an_older_database_is_migrated_with_its_accounts(tmp_path: Path, capsys: Any) -> None:
    """A version-2 database (before owner and forward_to) keeps its rows."""
    host = Host(tmp_path)
    host.registry(copy.deepcopy(REGISTRY))
    v2 = (tmp_path / "schema.sql").read_text()
    v2 = v2.replace("    owner        TEXT,\n", "").replace("    forward_to   TEXT,\n", "")
    v2 = v2[:v2.index("-- --- What Dovecot reads")] + "PRAGMA user_version = 2;\n"
    with sqlite3.connect(host.db / "users.sqlite") as db:
        db.executescript(v2)
        db.execute("INSERT INTO domains VALUES ('moj.gov.vn', 'active')")
        db.execute("INSERT INTO accounts (address, local_part, domain, kind, display_name, "
                   "password) VALUES ('cu@moj.gov.vn', 'cu', 'moj.gov.vn', 'personal', 'Cũ', "
                   "'{PLAIN}x')")
    out = host.apply(capsys)
    assert any("migrated" in line and "schema 4" in line for line in out), out
    assert host.sql("PRAGMA user_version") == [(4,)]
    # Not in the registry: archived, with its password hash kept.
    assert host.sql("SELECT state, password FROM accounts WHERE address = 'cu@moj.gov.vn'") == [
        ("archived", "{PLAIN}x")]


def change(host: Host, capsys: Any, monkeypatch: Any, **request: str) -> tuple[int, str]:
    import io

    monkeypatch.setattr(host.tool.sys, "stdin", io.StringIO(json.dumps(request)))
    status = host.tool.main(["hopthu-userdb", "change-password", str(host.tmp / "userdb.conf")])
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip()


@pytest.mark.control("ART14-FIRST-LOGIN")
def test_change_password_clears_must_change_and_keeps_its_contract(
    host: Host, capsys: Any, monkeypatch: Any
) -> None:
    host.apply(capsys)
    [file] = host.password_files()
    initial = dict(line.split("\t") for line in file.read_text().splitlines()
                   if not line.startswith("#"))["anvn@moj.gov.vn"]
    good = "Mật-khẩu-Mới-2026"
    assert change(host, capsys, monkeypatch, address="anvn@moj.gov.vn", current="nope",
                  new=good) == (3, "wrong")
    assert change(host, capsys, monkeypatch, address="khong@moj.gov.vn", current=initial,
                  new=good) == (3, "wrong")
    assert change(host, capsys, monkeypatch, address="lienhe@moj.gov.vn", current="",
                  new=good) == (3, "wrong")
    for new, reason in [("Short-1a", "policy:too_short"), (initial, "policy:same_as_current"),
                        ("xx-ANVN-2026-yy", "policy:contains_local_part"),
                        ("onlylowercaseletters", "policy:too_few_classes"),
                        ("Line\nBreak-2026", "policy:invalid_character")]:
        assert change(host, capsys, monkeypatch, address="anvn@moj.gov.vn", current=initial,
                      new=new) == (4, reason)
    assert host.sql("SELECT must_change FROM accounts WHERE address = 'anvn@moj.gov.vn'") == [(1,)]
    assert change(host, capsys, monkeypatch, address=" ANVN@moj.gov.vn", current=initial,
                  new=good) == (0, "changed")
    assert host.sql("SELECT password, must_change FROM accounts WHERE address = ?",
                    "anvn@moj.gov.vn") == [("{PLAIN}" + good, 0)]
    assert host.sql("SELECT nologin FROM login_passdb WHERE user = 'anvn@moj.gov.vn'") == [(None,)]
    record = host.audit.read_text().splitlines()[-1]
    assert '"operation": "change-password"' in record and "(first login)" in record
    assert initial not in host.audit.read_text() and good not in host.audit.read_text()
    # An archived account cannot change (and so reopen) its password.
    entries = copy.deepcopy(REGISTRY)
    entries[0]["state"] = "archived"
    entries[2]["delegates"] = []
    host.registry(entries)
    host.apply(capsys)
    assert change(host, capsys, monkeypatch, address="anvn@moj.gov.vn", current=good,
                  new=good + "x") == (5, "inactive:archived")


def test_initial_passwords_are_salted_sha512_that_dovecot_reads(tmp_path: Path) -> None:
    """The real hash_initial: Dovecot's SSHA512, base64(sha512(secret + salt) + salt),
    one hash per secret, in order, each with its own salt."""
    import base64
    import hashlib

    tool = Host(tmp_path).tool
    spec = importlib.util.spec_from_file_location("hopthu_userdb_real", tmp_path / "tool.py")
    assert spec is not None and spec.loader is not None
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)
    secrets = [tool.initial_password() for _ in range(3)]
    hashes = real.hash_initial(secrets)
    assert len(hashes) == 3
    salts = set()
    for secret, hashed in zip(secrets, hashes):
        assert hashed.startswith("{SSHA512}")
        raw = base64.b64decode(hashed.removeprefix("{SSHA512}"))
        digest, salt = raw[:64], raw[64:]
        assert len(salt) == 16
        assert hashlib.sha512(secret.encode() + salt).digest() == digest
        assert hashlib.sha512(b"x" + secret.encode() + salt).digest() != digest
        salts.add(salt)
    assert len(salts) == 3
