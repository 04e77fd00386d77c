"""`hopthu backup now|list|drill|restore`: which host runs what, offline.

SSH is replaced by a local shell and the host tool by a stub that prints
its arguments, so these tests prove the controller's side only: a store's
backup, list and restore run on the store, its drill on the backup host
that keeps its repository, production goes through sudo, and bad arguments
stop before any host is contacted. The tool itself is
tests/unit/test_backup_tool.py; the whole chain is tests/lab/test_backup.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hopthu.backup import command
from hopthu.cli import main
from hopthu.settings import load_inventory


@pytest.fixture
def contacted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Hosts contacted, in order; each runs the command in a local shell."""
    hosts: list[str] = []

    def fake_ssh(settings: Any) -> list[str]:
        hosts.append(settings.context["inventory_hostname"])
        return ["sh", "-c"]

    stub = tmp_path / "hopthu-backup"
    stub.write_text('#!/bin/sh\necho "ran: $*"\n[ "$1" != fail ]\n')
    stub.chmod(0o755)
    monkeypatch.setattr(command, "ssh_argv", fake_ssh)
    monkeypatch.setattr(command, "TOOL", str(stub))
    return hosts


def test_each_store_knows_the_backup_host_that_keeps_its_repository() -> None:
    lab = command.stores(load_inventory("lab"))
    assert {name: s.keeper for name, s in lab.items()} == {"mail1": "backup1", "mail2": "backup1"}
    production = command.stores(load_inventory("production"))
    assert {name: s.keeper for name, s in production.items()} == {"store1": "backup1"}


def test_a_backup_now_runs_on_every_store(contacted: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "now", "--inventory", "lab"]) == 0
    assert contacted == ["mail1", "mail2"]
    out = capsys.readouterr().out
    assert "mail1: ran: create" in out and "mail2: ran: create" in out


def test_a_drill_runs_on_the_backup_host_for_the_store(contacted: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "drill", "--inventory", "lab", "--host", "mail2", "--keep",
                 "--archive", "mail2-2026-11-30T010000Z"]) == 0
    assert contacted == ["backup1"]
    assert "backup1: ran: drill mail2 --archive mail2-2026-11-30T010000Z --keep" in \
        capsys.readouterr().out
    assert main(["backup", "drill", "--inventory", "lab", "--host", "mail1",
                 "--verify", "/srv/borg/.drill/mail1"]) == 0
    assert "backup1: ran: verify /srv/borg/.drill/mail1" in capsys.readouterr().out


def test_a_restore_runs_on_the_store_and_needs_yes_for_a_whole_host(
    contacted: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backup", "restore", "--inventory", "lab", "--host", "mail1",
                 "--mailbox", "an@moj.gov.vn"]) == 0
    assert "mail1: ran: restore --mailbox an@moj.gov.vn" in capsys.readouterr().out
    assert main(["backup", "restore", "--inventory", "lab", "--host", "mail1", "--all"]) == 0
    assert "mail1: ran: restore --all\n" in capsys.readouterr().out
    assert main(["backup", "restore", "--inventory", "lab", "--host", "mail1", "--all",
                 "--yes"]) == 0
    assert "mail1: ran: restore --all --yes" in capsys.readouterr().out
    assert contacted == ["mail1", "mail1", "mail1"]


def test_bad_arguments_stop_before_any_host_is_contacted(
    contacted: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backup", "now", "--inventory", "lab", "--host", "backup1"]) == 2
    assert "not a store host that backs up" in capsys.readouterr().err
    assert main(["backup", "restore", "--inventory", "lab", "--mailbox", "an@moj.gov.vn"]) == 2
    assert "name the one store to restore with --host" in capsys.readouterr().err
    assert contacted == []


def test_a_failure_on_a_host_fails_the_command(contacted: list[str], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(command, "TOOL", "/nonexistent/hopthu-backup")
    assert main(["backup", "list", "--inventory", "lab", "--host", "mail1"]) == 1
    err = capsys.readouterr().err
    assert "is not installed: deploy the backup role to mail1 first" in err
    assert "hopthu backup list: mail1 failed (exit 3)" in err


def test_production_runs_the_tool_through_sudo() -> None:
    store1 = load_inventory("production")["store1"]
    assert command.remote(store1, [command.TOOL, "create"]) == \
        "sudo -n /usr/local/sbin/hopthu-backup create"
    mail1 = load_inventory("lab")["mail1"]
    assert command.remote(mail1, [command.TOOL, "create"]) == "/usr/local/sbin/hopthu-backup create"
