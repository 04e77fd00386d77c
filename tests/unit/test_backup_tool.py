"""hopthu-backup, the backup host tool, against real borg on this machine (ART11-7-*).

The tool is rendered from its template and loaded twice: once as a store
host (the client: its mailboxes, user database and configuration under a
temporary directory) and once as the backup host (the server: the
repositories under another). They meet the way they do in the lab: the
client reaches its repository through "ssh", here a stand-in that runs
exactly the command the backup host's authorized_keys forces,
``borg serve --append-only --restrict-to-repository <repository>``, so the
append-only behaviour is borg's own, not imitated. No network is used.

What is proved here, and again end to end in tests/lab/test_backup.py:
the manifest describes every message (path, size, sha256, flags); a drill
verifies every message and names any file whose bytes differ or that is
missing; a wrong passphrase, a deleted repository and an unreachable backup
host each fail with a clear message and a failed state; a client's `borg
delete` cannot destroy history: the backup host refuses to prune or compact
after it, and the documented rollback brings the archives back; a restore
puts back what is missing and never replaces newer mail.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hopthu.render import render

pytestmark = pytest.mark.skipif(shutil.which("borg") is None,
                                reason="borg is not installed: apt-get install borgbackup")

PASSPHRASE = "correct horse battery staple, hopthu lab"
DOMAIN = "moj.gov.vn"

#: (mailbox, folder, maildir unique name, flags, body) of the seeded mail. The
#: Vietnamese folder is stored as Dovecot names it on disk (modified UTF-7).
MESSAGES = [
    ("an", "", "1764460800.M1P100.mail1,S=120,W=123", "S", b"Subject: Xin chao\r\n\r\nMot\r\n"),
    ("an", "", "1764460801.M2P100.mail1,S=130,W=133", "RS", b"Subject: Tra loi\r\n\r\nHai\r\n"),
    ("an", "", "1764460802.M3P100.mail1,S=140,W=143", "", b"Subject: Chua doc\r\n\r\nBa\r\n"),
    ("an", ".B&AOE-o c&AOE-o", "1764460803.M4P100.mail1,S=150,W=153", "FS",
     b"Subject: Bao cao\r\n\r\nBon\r\n"),
    ("vanphong", "", "1764460804.M5P100.mail1,S=160,W=163", "S", b"Subject: Cong van\r\n\r\n5\r\n"),
    ("vanphong", ".Sent", "1764460805.M6P100.mail1,S=170,W=173", "S", b"Subject: Da gui\r\n\r\n6\r\n"),
]


def load_tool(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Site:
    """A store host (client) and a backup host (server), each a copy of the tool."""

    root: Path
    client: Any
    server: Any
    repository: Path
    stub: Path
    client_config: dict[str, Any]
    server_config: dict[str, Any]
    clock: list[datetime.datetime]

    @property
    def vmail(self) -> Path:
        return Path(self.client.VMAIL)

    def mailbox(self, local: str) -> Path:
        return self.vmail / DOMAIN / local / "Maildir"

    def run_client(self, *args: str) -> tuple[int, str, str]:
        return run(self.client, self.root / "client" / "backup.conf", *args)

    def run_server(self, *args: str) -> tuple[int, str, str]:
        return run(self.server, self.root / "server" / "backup.conf", *args)

    def state(self) -> dict[str, Any]:
        return json.loads((Path(self.client.STATE_DIR) / "last.json").read_text())

    def attacker_borg(self, *args: str) -> subprocess.CompletedProcess[str]:
        """borg run on the client by someone holding its key: through the forced command.

        With the host's own borg cache, the worst case for the rollback: the
        cache then remembers the transactions the rollback undoes.
        """
        env = {**os.environ, "BORG_PASSPHRASE": PASSPHRASE, "BORG_RSH": str(self.stub),
               "BORG_BASE_DIR": str(Path(self.client.STATE_DIR) / "borg"),
               "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "YES"}
        return subprocess.run(["borg", *args], env=env, capture_output=True, text=True,
                              check=False)

    def location(self) -> str:
        return self.client_config["client"]["repository"]


def run(tool: Any, config: Path, *args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = tool.main(["hopthu-backup", "--config", str(config), *args])
    return code, out.getvalue(), err.getvalue()


def write_stub(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def seed(site: Site) -> None:
    for local, folder, key, flags, body in MESSAGES:
        maildir = site.mailbox(local) / folder if folder else site.mailbox(local)
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        (maildir / "cur" / f"{key}:2,{flags}").write_bytes(body)
        (maildir / "dovecot-uidlist").write_text("3 V1764460800 N100\n")
    (site.mailbox("an") / "tmp" / "1764460899.M9P1.mail1").write_bytes(b"half a delivery")
    db = sqlite3.connect(site.client.USERDB)
    db.executescript("CREATE TABLE accounts (address TEXT PRIMARY KEY, password TEXT);"
                     "INSERT INTO accounts VALUES ('an@moj.gov.vn', '{ARGON2ID}x'),"
                     "('vanphong@moj.gov.vn', '{ARGON2ID}y');")
    db.commit()
    db.close()
    Path(site.client.DKIM_DIR, f"{DOMAIN}.mail1.key").write_text("private key\n")
    Path(site.client.ACCOUNTS_LOG).write_text("2026-11-01 created an@moj.gov.vn\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    rendered = tmp_path / "hopthu_backup.py"
    rendered.write_text(render("usr/local/sbin/hopthu-backup.j2", {}))
    client = load_tool(rendered, "hopthu_backup_client")
    server = load_tool(rendered, "hopthu_backup_server")
    me = pwd.getpwuid(os.geteuid()).pw_name
    repositories = tmp_path / "server" / "srv-borg"
    repository = repositories / "mail1"
    etc = tmp_path / "client" / "etc"
    for directory in (etc / "postfix", etc / "hopthu" / "backup", tmp_path / "client" / "vmail",
                      tmp_path / "client" / "node-exporter",
                      tmp_path / "client" / "userdb", tmp_path / "client" / "dkim",
                      repositories, tmp_path / "server" / "etc"):
        directory.mkdir(parents=True, exist_ok=True)
    (etc / "postfix" / "main.cf").write_text("myhostname = mail1.moj.gov.vn\n")
    (etc / "hopthu" / "backup" / "id_ed25519").write_text("never archived\n")
    for side in ("client", "server"):
        secret = tmp_path / side / "passphrase"
        secret.write_text(PASSPHRASE + "\n")
        secret.chmod(0o600)
    stub = write_stub(tmp_path / "ssh-forced-command",
                      f"exec borg serve --append-only --restrict-to-repository {repository}\n")
    for tool, side in ((client, "client"), (server, "server")):
        tool.PASSPHRASE_FILE = str(tmp_path / side / "passphrase")
        tool.STATE_DIR = str(tmp_path / side / "state")
        tool.SERVER_USER = me
        tool.REPOSITORY_DIR = str(repositories)
    client.BORG_RSH = str(stub)
    client.VMAIL = str(tmp_path / "client" / "vmail")
    client.USERDB = str(tmp_path / "client" / "userdb" / "users.sqlite")
    client.USERDB_TOOL = str(tmp_path / "client" / "no-userdb-tool")
    client.DKIM_DIR = str(tmp_path / "client" / "dkim")
    client.ACCOUNTS_LOG = str(tmp_path / "client" / "accounts.log")
    client.EXCLUDE = (str(etc / "hopthu" / "backup"),)
    calls: list[tuple[str, ...]] = []
    client.systemctl = lambda *args: calls.append(args) or subprocess.CompletedProcess(args, 3)
    client_config = {
        "host": "mail1",
        "client": {
            "repository": f"ssh://borg@backup1.invalid{repository}",
            "server_host": "backup1", "server_address": "198.18.0.20",
            "paths": [str(etc / "postfix"), str(etc / "hopthu"), client.DKIM_DIR,
                      client.ACCOUNTS_LOG, str(tmp_path / "client" / "etc" / "rspamd")],
            "compression": "lz4",
            # The node exporter's textfile directory, as on a monitored store.
            "metrics_textfile": str(tmp_path / "client" / "node-exporter" / "hopthu_backup.prom"),
        },
        "server": None,
    }
    server_config = {"host": "backup1", "client": None,
                     "server": {"clients": ["mail1"],
                                "keep": {"daily": 7, "weekly": 4, "monthly": 6}}}
    (tmp_path / "client" / "backup.conf").write_text(
        "# hopthu-backup settings\n" + json.dumps(client_config))
    (tmp_path / "server" / "backup.conf").write_text(json.dumps(server_config))
    # Archive names carry the time to the second: give each run its own minute.
    clock = [datetime.datetime(2026, 11, 30, 1, 0, tzinfo=datetime.UTC)]

    def tick() -> datetime.datetime:
        clock[0] += datetime.timedelta(minutes=1)
        return clock[0]

    client.now = tick
    made = Site(tmp_path, client, server, repository, stub, client_config, server_config, clock)
    made.calls = calls  # type: ignore[attr-defined]
    seed(made)
    code, _, err = made.run_server("init-repository", "mail1")
    assert code == 0, err
    yield made


def backup(site: Site) -> str:
    code, out, err = site.run_client("create")
    assert code == 0, f"create failed: {err}{out}"
    assert site.state()["result"] == "ok", site.state()
    return str(site.state()["archive"])


def archive_names(site: Site) -> list[str]:
    code, out, err = site.run_server("list", "mail1")
    assert code == 0, err
    return [line.split()[0] for line in out.splitlines() if line.startswith("mail1-")]


def extracted_manifest(site: Site, archive: str) -> list[dict[str, Any]]:
    code, out, err = site.run_server("drill", "mail1", "--archive", archive, "--keep")
    assert code == 0, err + out
    path = Path(site.server.find_manifest(site.server.drill_dir("mail1")))
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- create and the manifest -----------------------------------------------------------


def test_init_repository_makes_the_repository_once(site: Site) -> None:
    assert (site.repository / "config").is_file()
    code, out, _ = site.run_server("init-repository", "mail1")
    assert code == 0 and out.splitlines()[-1] == "hopthu-backup: unchanged"


def test_a_backup_records_its_success_in_the_state_file(site: Site) -> None:
    archive = backup(site)
    state = site.state()
    assert archive.startswith("mail1-2026-11-30T")
    assert state["messages"] == len(MESSAGES)
    assert state["last_success_archive"] == archive
    assert state["skipped"] == [site.client_config["client"]["paths"][-1]]
    assert archive_names(site) == [archive]
    assert not (site.vmail / site.client.SNAPSHOT).exists(), "the snapshot was left behind"


@pytest.mark.control("ART11-7-BACKUP")
def test_the_manifest_has_path_size_sha256_and_flags_of_every_message(site: Site) -> None:
    archive = backup(site)
    header, *entries = extracted_manifest(site, archive)
    messages = {e["path"]: e for e in entries if e["kind"] == "message"}
    assert header["messages"] == len(MESSAGES) == len(messages)
    for local, folder, key, flags, body in MESSAGES:
        path = "/".join(p for p in (site.client.vmail_in_archive(), DOMAIN, local, "Maildir",
                                    folder, "cur", f"{key}:2,{flags}") if p)
        assert messages[path]["size"] == len(body)
        assert messages[path]["flags"] == flags
        import hashlib

        assert messages[path]["sha256"] == hashlib.sha256(body).hexdigest()
    kinds = {e["kind"] for e in entries}
    assert kinds == {"message", "file", "database"}
    assert not any("/tmp/" in e["path"] for e in entries), "a delivery in flight was archived"


def test_the_archive_holds_the_configuration_but_never_the_backup_key(site: Site) -> None:
    archive = backup(site)
    extracted_manifest(site, archive)
    drilled = Path(site.server.drill_dir("mail1"))
    etc = site.root / "client" / "etc"
    assert (drilled / str(etc / "postfix" / "main.cf").lstrip("/")).is_file()
    assert (drilled / site.client.DKIM_DIR.lstrip("/") / f"{DOMAIN}.mail1.key").is_file()
    assert (drilled / site.client.ACCOUNTS_LOG.lstrip("/")).is_file()
    assert not (drilled / str(etc / "hopthu" / "backup").lstrip("/")).exists()


def test_an_unchanged_message_is_not_read_again_by_the_next_backup(site: Site,
                                                                  tmp_path: Path) -> None:
    # borg lists each file it had to read (A added, M modified) when asked; the
    # stand-in asks, and keeps the list of each `create`.
    listed = tmp_path / "borg-create.list"
    site.client.BORG = str(write_stub(
        tmp_path / "borg-listing",
        f'if [ "$1" = create ]; then shift; '
        f'exec borg create --list --filter=AM "$@" 2>"{listed}"; fi\nexec borg "$@"\n'))
    backup(site)
    backup(site)
    read = [line for line in listed.read_text().splitlines()
            if "/cur/" in line or "/new/" in line]
    assert not read, (
        "the second backup read unchanged messages again (the snapshot's hard links change "
        f"their ctime, so borg's files cache must not compare it): {read}")


def test_the_snapshot_follows_a_message_renamed_while_it_is_taken(site: Site,
                                                                  tmp_path: Path) -> None:
    maildir = site.mailbox("an")
    old = "1764460802.M3P100.mail1,S=140,W=143:2,"
    (maildir / "cur" / old).rename(maildir / "cur" / (old + "S"))  # read meanwhile
    target = tmp_path / "snapshot" / "cur"
    target.mkdir(parents=True)
    made = site.client.link_message(str(maildir / "cur"), old, str(target))
    assert made == str(target / (old + "S"))
    assert site.client.link_message(str(maildir / "cur"), "1.gone,S=1:2,S", str(target)) is None


# --- Drills --------------------------------------------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.control("ART11-7-RESTORE")
def test_a_drill_verifies_every_message_of_the_latest_archive(site: Site) -> None:
    backup(site)
    code, out, err = site.run_server("drill", "mail1")
    assert code == 0, err + out
    assert f"verified {len(MESSAGES)} of {len(MESSAGES)} messages" in out
    assert "database snapshot: integrity ok, 2 accounts" in out
    assert out.splitlines()[-1] == f"hopthu-backup drill: ok ({len(MESSAGES)} messages)"
    assert not Path(site.server.drill_dir("mail1")).exists(), "the drill left its scratch copy"
    record = json.loads((Path(site.server.STATE_DIR) / "drill.json").read_text())["mail1"]
    assert record["result"] == "ok" and record["messages"] == len(MESSAGES)


@pytest.mark.control("ART11-7-BACKUP")
def test_a_changed_byte_fails_the_drill_naming_the_file(site: Site) -> None:
    archive = backup(site)
    extracted_manifest(site, archive)
    drilled = Path(site.server.drill_dir("mail1"))
    victim = next(drilled.rglob("1764460803.M4P100*"))
    data = bytearray(victim.read_bytes())
    data[3] ^= 0x01
    victim.write_bytes(bytes(data))
    code, out, _ = site.run_server("verify", str(drilled))
    assert code == 1
    named = str(victim.relative_to(drilled))
    assert f"DIFFERS {named}: sha256" in out
    assert out.splitlines()[-1].startswith("hopthu-backup verify: FAILED (1 problems")


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.control("ART11-7-RESTORE")
def test_a_missing_or_extra_message_fails_the_drill_naming_it(site: Site) -> None:
    archive = backup(site)
    extracted_manifest(site, archive)
    drilled = Path(site.server.drill_dir("mail1"))
    gone = next(drilled.rglob("1764460801.M2P100*"))
    gone.unlink()
    extra = gone.parent / "1764469999.M1P1.intruder,S=5:2,S"
    extra.write_bytes(b"extra")
    code, out, _ = site.run_server("verify", str(drilled))
    assert code == 1
    assert f"MISSING {gone.relative_to(drilled)}" in out
    assert f"EXTRA {extra.relative_to(drilled)}" in out


def test_a_drill_without_an_archive_has_nothing_to_verify(site: Site) -> None:
    code, out, _ = site.run_server("drill", "--all")
    assert code == 0 and "no archive yet" in out


# --- Clear failures ----------------------------------------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
def test_a_wrong_passphrase_fails_clearly_and_keeps_the_last_success(site: Site) -> None:
    first = backup(site)
    Path(site.client.PASSPHRASE_FILE).write_text("not the passphrase\n")
    code, _, err = site.run_client("create")
    assert code == 1
    assert "wrong passphrase" in err and "backup__passphrase_file" in err
    state = site.state()
    assert state["result"] == "failed" and "wrong passphrase" in state["message"]
    assert state["last_success_archive"] == first and state["archive"] is None


@pytest.mark.control("ART11-7-BACKUP")
def test_a_deleted_repository_fails_clearly(site: Site) -> None:
    backup(site)
    shutil.rmtree(site.repository)
    code, _, err = site.run_client("create")
    assert code == 1
    assert "does not exist" in err and "incident" in err
    assert site.state()["result"] == "failed"
    code, out, _ = site.run_server("prune")
    assert code == 1 and "mail1: FAILED" in out and "does not exist" in out


@pytest.mark.control("ART11-7-BACKUP")
def test_an_unreachable_backup_host_fails_clearly(site: Site) -> None:
    site.client.BORG_RSH = str(write_stub(
        site.root / "ssh-down",
        'echo "ssh: connect to host 198.18.0.20 port 22: No route to host" >&2\nexit 255\n'))
    code, _, err = site.run_client("create")
    assert code == 1
    assert "198.18.0.20 cannot be reached over SSH" in err
    assert "No route to host" in site.state()["message"]


@pytest.mark.parametrize(("stderr", "meaning"), [
    (("Remote: borg@198.18.0.20: Permission denied (publickey).\n"
      "Connection closed by remote host. Is borg working on the server?"),
     "does not accept this host's key"),
    ("Remote: Host key verification failed.\nConnection closed by remote host.",
     "did not show the SSH key pinned"),
    ("Repository path not allowed: /srv/borg/mail2", "refuses"),
    (("Cache, or information obtained from the security directory is newer than repository - "
      "this is either an attack or unsafe (multiple repos with same ID)"), "forget-cache"),
    ("Failed to create/acquire the lock /srv/borg/mail1/lock.exclusive (timeout).",
     "stayed locked"),
    ("something nobody expected", "borg failed: something nobody expected"),
])
def test_each_borg_failure_is_explained(site: Site, stderr: str, meaning: str) -> None:
    assert meaning in site.client.diagnose(stderr, site.client_config, "REPO")


def test_a_missing_passphrase_file_says_to_deploy(site: Site) -> None:
    os.unlink(site.client.PASSPHRASE_FILE)
    code, _, err = site.run_client("create")
    assert code == 1 and "cannot read the backup passphrase" in err and "deploy" in err


# --- The node exporter's textfile (the monitor's BackupTooOld) -----------------------------


def published(site: Site) -> dict[str, tuple[str, float]]:
    """hopthu_backup.prom as {metric: (labels, value)}; promtool checks its format if present."""
    path = Path(site.client_config["client"]["metrics_textfile"])
    text = path.read_text(encoding="utf-8")
    if shutil.which("promtool"):
        linted = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                capture_output=True, timeout=60, check=False)
        assert linted.returncode == 0, f"promtool refuses {path}:\n{linted.stdout}{linted.stderr}"
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            samples[name] = ("{" + labels, float(value))
    return samples


def unix(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


@pytest.mark.control("ART11-7-BACKUP")
def test_a_backup_publishes_its_success_for_the_node_exporter(site: Site) -> None:
    backup(site)
    state = site.state()
    path = Path(site.client_config["client"]["metrics_textfile"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644, "the node exporter runs as prometheus"
    samples = published(site)
    labels = f'{{repository="{site.location()}"}}'
    assert samples == {
        "hopthu_backup_last_success_timestamp_seconds": (labels, unix(state["last_success_at"])),
        "hopthu_backup_last_attempt_timestamp_seconds": (labels, unix(state["finished_at"])),
        "hopthu_backup_last_ok": (labels, 1.0),
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["hopthu_backup.prom"], (
        "a temporary file was left beside the metrics")


@pytest.mark.control("ART11-7-BACKUP")
def test_a_failed_backup_publishes_the_failure_and_keeps_the_last_success(site: Site) -> None:
    backup(site)
    first = site.state()["last_success_at"]
    path = Path(site.client_config["client"]["metrics_textfile"])
    # A reader that opened the file before the next run: the new file
    # replaces it by a rename, so the reader still sees the old one whole.
    with path.open(encoding="utf-8") as reader:
        before = path.read_text(encoding="utf-8")
        Path(site.client.PASSPHRASE_FILE).write_text("not the passphrase\n")
        code, _, _ = site.run_client("create")
        assert code == 1
        assert reader.read() == before, "the metrics file was rewritten in place"
    samples = published(site)
    assert samples["hopthu_backup_last_ok"][1] == 0.0
    assert samples["hopthu_backup_last_success_timestamp_seconds"][1] == unix(first)
    assert samples["hopthu_backup_last_attempt_timestamp_seconds"][1] == \
        unix(site.state()["finished_at"]) > unix(first)


def test_a_store_that_never_backed_up_publishes_no_success(site: Site) -> None:
    site.client.BORG_RSH = str(write_stub(
        site.root / "ssh-down",
        'echo "ssh: connect to host 198.18.0.20 port 22: No route to host" >&2\nexit 255\n'))
    code, _, _ = site.run_client("create")
    assert code == 1
    samples = published(site)
    assert "hopthu_backup_last_success_timestamp_seconds" not in samples, (
        "a success that never happened would read as a backup from 1970")
    assert samples["hopthu_backup_last_ok"][1] == 0.0


def test_a_store_without_the_node_exporter_gets_no_metrics_file(site: Site) -> None:
    textfile_dir = Path(site.client_config["client"]["metrics_textfile"]).parent
    textfile_dir.rmdir()
    backup(site)
    assert not textfile_dir.exists(), "the tool made the node exporter's directory itself"


# --- Append-only: history survives the client --------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
def test_the_client_cannot_delete_its_repository(site: Site) -> None:
    backup(site)
    result = site.attacker_borg("delete", site.location())
    assert result.returncode == 2 and "append-only mode" in result.stderr
    assert (site.repository / "config").is_file()


@pytest.mark.control("ART11-7-BACKUP")
def test_archives_a_client_deleted_are_refused_by_prune_and_recovered_by_rollback(
    site: Site,
) -> None:
    first = backup(site)
    assert site.run_server("prune")[0] == 0  # the backup host now knows `first`
    second = backup(site)
    before_attack = datetime.datetime.now(datetime.UTC).isoformat()
    deleted = site.attacker_borg("delete", f"{site.location()}::{first}")
    assert deleted.returncode == 0, "borg delete through the append-only key appears to work"
    pruned = site.attacker_borg("prune", "--keep-last", "1", site.location())
    assert pruned.returncode == 0
    assert archive_names(site) == [second]

    code, out, _ = site.run_server("prune")
    assert code == 1
    assert f"archives vanished since this host last pruned: {first}" in out
    assert "Nothing was pruned or compacted" in out

    code, out, _ = site.run_server("transactions", "mail1")
    assert "a client (append-only)" in out and "this host (prune)" in out
    code, out, _ = site.run_server("rollback", "mail1", "--before", before_attack)
    assert code == 0 and "dry run" in out and archive_names(site) == [second]
    code, out, err = site.run_server("rollback", "mail1", "--before", before_attack, "--yes")
    assert code == 0, err + out
    assert "borg check passed" in out
    assert archive_names(site) == [first, second]

    # The client's cache saw the undone transactions: borg says so, and the
    # runbook's next step clears it.
    code, _, err = site.run_client("create")
    assert code == 1 and "forget-cache" in err
    assert site.run_client("forget-cache")[0] == 0
    third = backup(site)
    assert archive_names(site) == [first, second, third]
    assert site.run_server("prune")[0] == 0
    assert site.run_server("drill", "mail1", "--archive", first)[0] == 0


def test_prune_applies_the_retention_and_compacts(site: Site) -> None:
    made = [backup(site) for _ in range(3)]
    code, out, err = site.run_server("prune")
    assert code == 0, err + out
    kept = archive_names(site)
    assert made[-1] in kept and len(kept) < len(made), "three backups of one day all kept"
    assert f"mail1: kept {len(kept)} archives, pruned {len(made) - len(kept)}, compacted" in out
    record = json.loads((Path(site.server.STATE_DIR) / "prune.json").read_text())
    assert record["mail1"]["result"] == "ok"


# --- Restores ----------------------------------------------------------------------------------


def live(site: Site) -> dict[str, tuple[str, str]]:
    """(mailbox folder, unique name) -> (sha256, flags) of the live messages."""
    lines: list[str] = []
    site.client.live_manifest(out=lines.append)
    found = {}
    for line in lines:
        record = json.loads(line)
        folder = record["path"].rsplit("/", 2)[0]
        found[f"{folder}|{record['key']}"] = (record["sha256"], record["flags"])
    return found


@pytest.mark.control("ART11-7-RESTORE")
def test_a_mailbox_restore_puts_back_what_is_missing_and_keeps_newer_mail(site: Site) -> None:
    before = live(site)
    backup(site)
    cur = site.mailbox("an") / "cur"
    deleted = next(cur.glob("1764460801.M2P100*"))
    deleted.unlink()
    shutil.rmtree(site.mailbox("an") / ".B&AOE-o c&AOE-o")
    flagged = next(cur.glob("1764460802.M3P100*"))
    flagged.rename(cur / (flagged.name + "S"))  # read after the backup: newer flags
    newer = cur / "1764470000.M7P200.mail1,S=9:2,"
    newer.write_bytes(b"new mail")

    code, out, err = site.run_client("restore", "--mailbox", f"an@{DOMAIN}")
    assert code == 0, err + out
    assert f"an@{DOMAIN}: restored 2 messages" in out and "kept 2 already present" in out
    after = live(site)
    assert newer.read_bytes() == b"new mail", "mail that came after the backup was touched"
    assert (cur / (flagged.name + "S")).exists() and not flagged.exists(), \
        "the live flags were replaced by the archived ones"
    expected = dict(before)
    key = next(k for k in expected if "1764460802.M3P100" in k)
    expected[key] = (expected[key][0], "S")
    assert {k: v for k, v in after.items() if "1764470000" not in k and "/an/" in k} == \
        {k: v for k, v in expected.items() if "/an/" in k}
    assert not list(site.vmail.glob(site.client.RESTORE_PREFIX + "*"))


@pytest.mark.control("ART11-7-RESTORE")
def test_restore_all_puts_back_an_emptied_host(site: Site) -> None:
    before = live(site)
    backup(site)
    shutil.rmtree(site.vmail / DOMAIN)
    os.unlink(site.client.USERDB)
    Path(site.client.DKIM_DIR, f"{DOMAIN}.mail1.key").write_text("a new key of the rebuild\n")
    Path(site.client.ACCOUNTS_LOG).write_text("2026-11-30 rebuilt: created an@moj.gov.vn\n")

    code, out, _ = site.run_client("restore", "--all")
    assert code == 0 and "add --yes" in out and not (site.vmail / DOMAIN).exists()
    code, out, err = site.run_client("restore", "--all", "--yes")
    assert code == 0, err + out
    assert live(site) == before
    db = sqlite3.connect(site.client.USERDB)
    assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 2
    db.close()
    assert Path(site.client.DKIM_DIR, f"{DOMAIN}.mail1.key").read_text() == "private key\n"
    assert list(Path(site.client.DKIM_DIR).glob("*.pre-restore-*")), "the rebuild's key was lost"
    assert Path(site.client.ACCOUNTS_LOG).read_text().splitlines() == [
        "2026-11-01 created an@moj.gov.vn", "2026-11-30 rebuilt: created an@moj.gov.vn"]


@pytest.mark.control("ART11-7-RESTORE")
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file another owner")
def test_restore_all_gives_the_dkim_key_its_archived_owner_across_file_systems(
    site: Site, monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Path(site.client.DKIM_DIR, f"{DOMAIN}.mail1.key")
    os.chown(key, 65534, 65534)  # as _rspamd owns it on a host
    key.chmod(0o600)
    backup(site)
    key.write_text("a new key of the rebuild\n")

    def between_file_systems(source: str, target: str) -> None:
        # What shutil.move does when the scratch tree under /var/vmail and
        # /var/lib/rspamd/dkim are on different file systems: copy, then unlink.
        shutil.copy2(source, target)
        os.unlink(source)

    monkeypatch.setattr(site.client.shutil, "move", between_file_systems)
    code, out, err = site.run_client("restore", "--all", "--yes")
    assert code == 0, err + out
    restored = key.stat()
    assert key.read_text() == "private key\n"
    assert (restored.st_uid, restored.st_gid, restored.st_mode & 0o777) == (65534, 65534, 0o600), (
        "the restored DKIM key lost its archived owner: Rspamd could no longer read it")


def test_a_restore_names_a_mailbox_the_archive_lacks(site: Site) -> None:
    backup(site)
    code, _, err = site.run_client("restore", "--mailbox", f"nobody@{DOMAIN}")
    assert code == 1 and f"holds no mailbox nobody@{DOMAIN}" in err


def test_the_tool_compiles_with_the_hosts_python() -> None:
    source = render("usr/local/sbin/hopthu-backup.j2", {})
    compile(source, "hopthu-backup", "exec")
    assert source.startswith("#!/usr/bin/python3\n")
    assert sys.version_info >= (3, 11)

