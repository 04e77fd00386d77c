"""Unit mailboxes read by their owner and delegates (Art. 13): dovecot.conf and
hopthu-unit-acl.

dovecot.conf is rendered for Dovecot 2.3 (Debian 12) and 2.4 (Debian 13) and
parsed; hopthu-unit-acl is rendered and imported, with a real SQLite user
database made from the userdb role's own schema and a stand-in for doveadm
that keeps each mailbox's ACL in memory. The lab test
tests/lab/test_accounts.py proves the same against the real Dovecot.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_dovecot_junk import dovecot_conf, keys_anywhere, section, settings, values

from hopthu.render import render

MAP = "/var/lib/hopthu/dovecot/shared-mailboxes"


# --- dovecot.conf ---------------------------------------------------------------------------


def test_dovecot_24_shares_unit_mailboxes_through_a_shared_namespace_with_acls() -> None:
    conf = dovecot_conf(13)
    shared = values(section(conf, "namespace shared"))
    assert shared == {
        "type": "shared", "separator": "/", "prefix": "shared/$user/", "mail_driver": "maildir",
        "mail_path": "%{owner_home}/Maildir",
        "mail_index_private_path": "~/Maildir/shared/%{owner_user}",
        "subscriptions": "no", "list": "children"}
    assert values(section(conf, "mail_plugins"))["acl"] == "yes"
    assert values(section(conf, "protocol imap", "mail_plugins"))["imap_acl"] == "yes"
    top = values(conf)
    assert top["acl_driver"] == "vfile" and top["acl_defaults_from_inbox"] == "yes"
    assert values(section(conf, "acl_sharing_map", "dict file")) == {"path": MAP}


def test_dovecot_23_shares_unit_mailboxes_through_a_shared_namespace_with_acls() -> None:
    conf = dovecot_conf(12)
    shared = values(section(conf, "namespace shared"))
    assert shared == {
        "type": "shared", "separator": "/", "prefix": "shared/%%u/",
        "location": "maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%u",
        "subscriptions": "no", "list": "children"}
    assert values(conf)["mail_plugins"] == "$mail_plugins quota acl"
    plugins = [values(child) for key, child in conf if key == "plugin"]
    acl = next(p for p in plugins if "acl" in p)
    assert acl == {"acl": "vfile", "acl_defaults_from_inbox": "yes",
                   "acl_shared_dict": f"file:{MAP}"}


@pytest.mark.parametrize("major", [12, 13])
def test_without_unit_sharing_there_is_no_acl_and_no_shared_namespace(major: int) -> None:
    conf = dovecot_conf(major, dovecot__unit_sharing=False)
    keys = set(keys_anywhere(conf))
    assert "namespace shared" not in keys
    assert not {k for k in keys if k.startswith("acl")}
    text = render("etc/dovecot/dovecot.conf.j2", settings(major, dovecot__unit_sharing=False))
    assert "imap_acl" not in text and " acl" not in text.replace("# ", "")


# --- hopthu-unit-acl ------------------------------------------------------------------------


SCHEMA = render("etc/hopthu/userdb/schema.sql.j2", settings(13))


class FakeDoveadm:
    """doveadm acl get|set|delete|recalc on an in-memory ACL per mailbox."""

    def __init__(self) -> None:
        self.acl: dict[str, dict[str, list[str]]] = {}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str) -> str:
        self.calls.append(args)
        if args[:3] == ("-f", "tab", "acl"):
            args = args[2:]
        verb, rest = args[1], args[2:]
        assert rest[0] == "-u"
        user = rest[1]
        entries = self.acl.setdefault(user, {})
        if verb == "get":
            assert rest[2] == "INBOX"
            lines = ["id\tglobal\trights"]
            lines += [f"{ident}\t\t{' '.join(rights)}" for ident, rights in entries.items()]
            # A global entry is Dovecot's, never the program's to touch.
            lines.append("user=auditor@moj.gov.vn\t1\tlookup")
            return "\n".join(lines) + "\n"
        if verb == "set":
            entries[rest[3]] = sorted(rest[4:])
        elif verb == "delete":
            entries.pop(rest[3])
        elif verb != "recalc":
            raise AssertionError(f"unexpected doveadm {args}")
        return ""


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    source = tmp_path / "hopthu-unit-acl.py"
    source.write_text(render("usr/local/sbin/hopthu-unit-acl.j2", settings(13)), "utf-8")
    spec = importlib.util.spec_from_file_location("hopthu_unit_acl", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    db_path = tmp_path / "users.sqlite"
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA)
    db.execute("INSERT INTO domains (domain, state) VALUES ('moj.gov.vn', 'active')")
    for local, kind, owner in (("head", "personal", None), ("dele", "personal", None),
                               ("other", "personal", None), ("unit", "unit", "head@moj.gov.vn")):
        db.execute("INSERT INTO accounts (address, local_part, domain, kind, owner) "
                   "VALUES (?, ?, 'moj.gov.vn', ?, ?)", (f"{local}@moj.gov.vn", local, kind, owner))
    db.execute("INSERT INTO delegates (mailbox, login) VALUES ('unit@moj.gov.vn', "
               "'dele@moj.gov.vn')")
    db.commit()
    db.close()
    fake = FakeDoveadm()
    monkeypatch.setattr(module, "USERS_DB", str(db_path))
    monkeypatch.setattr(module, "MAIL_HOME", str(tmp_path / "vmail" / "{domain}" / "{local}"))
    monkeypatch.setattr(module, "doveadm", fake)
    module.fake = fake
    module.db_path = db_path
    module.home = tmp_path / "vmail" / "moj.gov.vn" / "unit"
    return module


def run(tool: Any, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert tool.main(["hopthu-unit-acl", *args]) == 0
    return capsys.readouterr().out.splitlines()


def verbs(tool: Any) -> set[str]:
    """The doveadm acl commands the program ran."""
    return {call[call.index("acl") + 1] for call in tool.fake.calls}


def sql(tool: Any, statement: str, *params: Any) -> None:
    db = sqlite3.connect(tool.db_path)
    with db:
        db.execute(statement, params)
    db.close()


OWNER = ["expunge", "insert", "lookup", "post", "read", "write", "write-deleted", "write-seen"]
DELEGATE = ["insert", "lookup", "post", "read", "write", "write-seen"]


@pytest.mark.control("ART13-DELEGATE")
def test_the_owner_and_the_delegate_get_their_rights_and_a_second_run_changes_nothing(
        tool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(tool, capsys)
    assert out[-1] == "hopthu-unit-acl: changed (1)"
    acl = tool.fake.acl["unit@moj.gov.vn"]
    assert acl == {"owner": sorted(tool.ALL_RIGHTS), "user=head@moj.gov.vn": OWNER,
                   "user=dele@moj.gov.vn": DELEGATE}
    assert ("acl", "recalc", "-u", "unit@moj.gov.vn") in tool.fake.calls
    # Personal mailboxes are never touched.
    assert set(tool.fake.acl) == {"unit@moj.gov.vn"}
    tool.fake.calls.clear()
    assert run(tool, capsys) == ["hopthu-unit-acl: unchanged"]
    assert verbs(tool) == {"get"}


def test_check_reports_and_changes_nothing(tool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(tool, capsys, "--check")
    assert "changed: unit@moj.gov.vn: user=dele@moj.gov.vn " + " ".join(DELEGATE) in out
    assert out[-1] == "hopthu-unit-acl: changed (1)"
    assert tool.fake.acl["unit@moj.gov.vn"] == {}
    assert verbs(tool) == {"get"}


@pytest.mark.control("ART13-DELEGATE")
def test_a_former_delegate_and_a_stranger_lose_everything(
        tool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(tool, capsys)
    # Someone was given rights by hand; the registry drops the delegate.
    tool.fake.acl["unit@moj.gov.vn"]["user=other@moj.gov.vn"] = ["lookup", "read"]
    sql(tool, "DELETE FROM delegates")
    out = run(tool, capsys)
    assert "changed: unit@moj.gov.vn: user=dele@moj.gov.vn removed" in out
    assert "changed: unit@moj.gov.vn: user=other@moj.gov.vn removed" in out
    assert set(tool.fake.acl["unit@moj.gov.vn"]) == {"owner", "user=head@moj.gov.vn"}


def test_an_inactive_owner_or_delegate_and_a_disabled_unit_read_nothing(
        tool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(tool, capsys)
    sql(tool, "UPDATE accounts SET state = 'disabled' WHERE address = 'dele@moj.gov.vn'")
    run(tool, capsys)
    assert set(tool.fake.acl["unit@moj.gov.vn"]) == {"owner", "user=head@moj.gov.vn"}
    sql(tool, "UPDATE accounts SET state = 'disabled' WHERE address = 'unit@moj.gov.vn'")
    run(tool, capsys)
    assert set(tool.fake.acl["unit@moj.gov.vn"]) == {"owner"}


def test_a_folder_of_its_own_acl_is_removed(tool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(tool, capsys)
    stray = tool.home / "Maildir" / ".Sent" / "dovecot-acl"
    stray.parent.mkdir(parents=True)
    stray.write_text("user=other@moj.gov.vn lr\n")
    assert run(tool, capsys, "--check")[-1] == "hopthu-unit-acl: changed (1)"
    assert stray.exists()
    out = run(tool, capsys)
    assert any(str(stray) in line and "removed" in line for line in out)
    assert not stray.exists()


def test_a_doveadm_failure_names_the_command(tool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: str) -> str:
        raise tool.Failure(f"doveadm {' '.join(args)}: Error: acl plugin not loaded")

    monkeypatch.setattr(tool, "doveadm", failing)
    with pytest.raises(tool.Failure, match="acl get -u unit@moj.gov.vn INBOX"):
        tool.main(["hopthu-unit-acl"])


def test_the_program_compiles_for_the_python_of_both_releases() -> None:
    for major in (12, 13):
        compile(render("usr/local/sbin/hopthu-unit-acl.j2", settings(major)),
                "hopthu-unit-acl", "exec")
