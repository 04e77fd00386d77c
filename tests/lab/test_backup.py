"""Backups, drills and recovery in the lab (Art. 11.7): a restore is proven, not assumed.

The stories of issue 6, end to end, on mail1 (a store) and backup1:

- seed a few hundred messages across personal and unit mailboxes, in
  Vietnamese-named folders, with flags; back up; drill: every message is
  verified; change one byte of the drilled copy: the drill fails, naming
  the file (ART11-7-BACKUP);
- a deleted message comes back with `hopthu backup restore --mailbox`, and
  mail that came later is not touched (ART11-7-RESTORE);
- append-only: `borg delete`, `prune` and `compact` run on mail1 with its
  own key seem to work, but the backup host refuses to prune or compact
  afterwards and the documented runbook (roles/backup/README.md,
  "Append-only: recovering deleted archives") brings every archive back; the
  repository itself cannot be deleted from mail1 (ART11-7-BACKUP);
- a wrong passphrase, a deleted repository and an unreachable backup host
  each fail the backup with a clear message and fail the infra suite's
  check, never a silent success (ART11-7-BACKUP);
- disaster recovery: back up, destroy mail1 (`hopthu lab` makes a fresh
  clone), rebuild it with a deploy, restore it whole; every account logs in
  with its current password, and every message is there with the same
  sha256 and the same flags (ART11-7-RESTORE).

The tests run in this order and build on each other (module fixtures); the
last destroys and rebuilds mail1, which ends converged by Ansible again.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.policy
import imaplib
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from mailcore import (  # noqa: F401
    Account,
    account,
    address,
    imap,
    mail_core,
    on_host,
    set_password_as_the_portal_would,
    tls_context,
)

from hopthu import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]

STORE, KEEPER = "mail1", "backup1"
TOOL = "/usr/local/sbin/hopthu-backup"
DOMAIN = "moj.gov.vn"
#: The seeded mailboxes: personal ones and a unit mailbox (Art. 13), each with
#: folders named in Vietnamese, as users name them.
SEEDED = ("an", "binh", "chi", "vanphong")
FOLDERS = ("Báo cáo", "Công văn đến", "Lưu trữ 2026")
PER_FOLDER = 25
FLAG_SETS = ("", "\\Seen", "\\Seen \\Answered", "\\Flagged", "\\Seen \\Flagged", "\\Draft")
#: A registry account (inventories/lab/accounts.yml) whose holder has set
#: their own password: after the rebuild it must still be that one.
CHANGED_ACCOUNT = f"dungpt@{DOMAIN}"
RUN = uuid.uuid4().hex[:8]
CHANGED_PASSWORD = f"Lab-Dung-{RUN}-doi-mat-khau"


# --- Helpers ------------------------------------------------------------------------------------


def hopthu(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hopthu", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


def run_on(host: str, command: str, *, timeout: float = 900) -> tuple[int, str, str]:
    from hopthu.lab import ssh_run

    rc, out, err = ssh_run(host, command, timeout=timeout)
    return rc, out, err


def backup_now() -> str:
    """A backup of mail1 through `hopthu backup now`; the archive's name."""
    result = hopthu("backup", "now", "--inventory", "lab", "--host", STORE)
    assert result.returncode == 0, f"the backup failed:\n{result.stdout}\n{result.stderr}"
    state = json.loads(on_host(STORE, "cat /var/lib/hopthu/backup/last.json"))
    assert state["result"] == "ok", state
    return str(state["archive"])


def keeper_archives() -> list[str]:
    out = on_host(KEEPER, f"{TOOL} list {STORE}")
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{STORE}-")]


def infra_check(name: str) -> subprocess.CompletedProcess[str]:
    """One check of tests/infra/test_backup.py on mail1, through `hopthu verify`.

    Its JUnit file goes to a scratch place: reports/lab/ keeps the evidence of
    the real infra runs (hopthu audit reads it).
    """
    with tempfile.TemporaryDirectory(prefix="hopthu-backup-check-") as scratch:
        return hopthu("verify", "--inventory", "lab", "--host", STORE, "-k", name,
                      "--junit", f"{scratch}/junit.xml", timeout=600)


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def quoted(mailbox: str) -> str:
    return '"' + imap_utf7(mailbox).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def imap_as(user: str, password: str) -> Iterator[imaplib.IMAP4_SSL]:
    client = imaplib.IMAP4_SSL(address(), 993, ssl_context=tls_context(), timeout=60)
    try:
        client.login(user, password)
        yield client
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def mailbox_contents(client: imaplib.IMAP4_SSL, mailbox: str) -> dict[str, frozenset[str]]:
    """Message-ID -> flags (without the session's \\Recent) of every message in `mailbox`."""
    status, count = client.select(quoted(mailbox), readonly=True)
    assert status == "OK", f"cannot select {mailbox!r}"
    if count and count[0] in (b"0", "0"):
        return {}
    status, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    found: dict[str, frozenset[str]] = {}
    if status != "OK" or not data or data == [None]:
        return found
    for part in data:
        if not isinstance(part, tuple):
            continue
        flags = re.search(rb"FLAGS \(([^)]*)\)", part[0])
        ident = re.search(rb"<[^>]+>", part[1])
        if ident:
            found[ident.group().decode()] = frozenset(
                f for f in (flags.group(1).decode().split() if flags else []) if f != "\\Recent")
    return found


def message(user: str, folder: str, number: int) -> tuple[str, bytes]:
    ident = f"<backup-{RUN}-{user}-{number}@lab.test.hopthu>"
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = f"Phòng Tổng hợp <tonghop@{DOMAIN}>"
    mail["To"] = f"{user}@{DOMAIN}"
    mail["Subject"] = f"{folder}: văn bản số {number} ({RUN})"
    mail["Message-ID"] = ident
    mail["Date"] = "Mon, 30 Nov 2026 08:00:00 +0700"
    mail.set_content(f"Kính gửi anh/chị,\n\nVăn bản số {number} trong thư mục {folder}.\n"
                     + "Nội dung kiểm thử sao lưu. " * (number % 7 + 1) + "\n")
    return ident, bytes(mail)


def live_manifest() -> dict[str, tuple[str, str]]:
    """(folder, maildir unique name) -> (sha256, flags) of every message on mail1's disk."""
    found = {}
    for line in on_host(STORE, f"{TOOL} manifest", timeout=600).splitlines():
        record = json.loads(line)
        folder = record["path"].rsplit("/", 2)[0]  # without cur/ or new/
        found[f"{folder}|{record['key']}"] = (record["sha256"], record["flags"])
    return found


# --- The corpus ---------------------------------------------------------------------------------


@dataclass
class Corpus:
    #: (user, folder) -> Message-ID -> flags, as IMAP shows them
    seen: dict[tuple[str, str], dict[str, frozenset[str]]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(len(v) for v in self.seen.values())


def read_corpus(corpus: Corpus) -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    now: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for user, password in corpus.passwords.items():
        with imap_as(user, password) as client:
            for _user, folder in [k for k in corpus.seen if k[0] == user]:
                now[(user, folder)] = mailbox_contents(client, folder)
    return now


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """A few hundred messages with flags, in Vietnamese-named folders of personal and unit
    mailboxes; the registry account's own password. backup1 is deployed again first, so
    that it knows the keys of stores recreated by earlier modules (mail2)."""
    from hopthu.engines import run_engine

    deployed = run_engine("ansible", "lab", limit=KEEPER)
    assert deployed.ok, deployed.explain()
    made = Corpus()
    for local in SEEDED:
        user = account(local)
        made.passwords[user.address] = user.password
        with imap(user) as client:
            for folder in FOLDERS:
                client.create(quoted(folder))  # NO when it exists: a lab that ran this before
                for number in range(PER_FOLDER):
                    _ident, raw = message(local, folder, number)
                    flags = FLAG_SETS[number % len(FLAG_SETS)]
                    status, _ = client.append(quoted(folder), f"({flags})" if flags else None,
                                              None, raw)
                    assert status == "OK", f"APPEND to {local}'s {folder!r} failed"
        made.seen.update({(user.address, f): {} for f in FOLDERS})
    set_password_as_the_portal_would(CHANGED_ACCOUNT, CHANGED_PASSWORD)
    made.passwords[CHANGED_ACCOUNT] = CHANGED_PASSWORD
    with imap_as(CHANGED_ACCOUNT, CHANGED_PASSWORD) as client:
        client.create(quoted("Hồ sơ"))
        for number in range(10):
            _ident, raw = message("dungpt", "Hồ sơ", number)
            client.append(quoted("Hồ sơ"), "(\\Seen)", None, raw)
    made.seen[(CHANGED_ACCOUNT, "Hồ sơ")] = {}
    made.seen = read_corpus(made)
    ours = sum(1 for box in made.seen.values() for ident in box if RUN in ident)
    assert ours == len(SEEDED) * len(FOLDERS) * PER_FOLDER + 10, f"seeded {ours} messages"
    return made


@pytest.fixture(scope="module")
def first_backup(corpus: Corpus) -> str:
    return backup_now()


# --- Backup and drill (ART11-7-BACKUP) ----------------------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
def test_a_drill_verifies_every_message_of_the_latest_backup(corpus: Corpus,
                                                             first_backup: str) -> None:
    result = hopthu("backup", "drill", "--inventory", "lab", "--host", STORE)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    verified = re.search(r"verified (\d+) of (\d+) messages", result.stdout)
    assert verified, result.stdout
    done, expected = int(verified.group(1)), int(verified.group(2))
    assert done == expected >= corpus.messages, (
        f"the drill verified {done} of {expected} messages; mail1 holds at least "
        f"{corpus.messages}:\n{result.stdout}")
    assert f"archive {first_backup}" in result.stdout
    assert "database snapshot: integrity ok" in result.stdout
    assert "hopthu-backup drill: ok" in result.stdout


@pytest.mark.control("ART11-7-BACKUP")
def test_a_changed_byte_in_the_restored_copy_fails_the_drill_naming_the_file(
    first_backup: str,
) -> None:
    kept = hopthu("backup", "drill", "--inventory", "lab", "--host", STORE, "--keep")
    assert kept.returncode == 0, kept.stderr
    scratch = re.search(r"kept the extracted archive in (\S+)", kept.stdout)
    assert scratch, kept.stdout
    directory = scratch.group(1)
    victim = on_host(KEEPER, f"find {shlex.quote(directory)}/var/vmail -path '*Maildir*/cur/*' "
                             f"-name '*' -type f -size +0 | sort | head -n 1").strip()
    assert victim, "no message in the drilled copy"
    # Flip one bit of the 10th byte, as a failing disk would.
    on_host(KEEPER, "python3 -c " + shlex.quote(
        "import sys; p = sys.argv[1]; d = bytearray(open(p, 'rb').read()); d[9] ^= 1; "
        "open(p, 'wb').write(bytes(d))") + f" {shlex.quote(victim)}")
    checked = hopthu("backup", "drill", "--inventory", "lab", "--host", STORE,
                     "--verify", directory)
    on_host(KEEPER, f"rm -rf {shlex.quote(directory)}")
    assert checked.returncode == 1, f"a changed byte passed the drill:\n{checked.stdout}"
    named = victim[len(directory):].lstrip("/")
    assert f"DIFFERS {named}: sha256" in checked.stdout, checked.stdout
    assert "hopthu-backup verify: FAILED (1 problems" in checked.stdout


# --- A mailbox restore (ART11-7-RESTORE) ---------------------------------------------------------


@pytest.mark.control("ART11-7-RESTORE")
def test_a_mailbox_restore_brings_back_deleted_mail_and_keeps_later_mail(
    corpus: Corpus, first_backup: str,
) -> None:
    user = account("binh")
    folder = FOLDERS[0]
    before = corpus.seen[(user.address, folder)]
    with imap(user) as client:
        client.select(quoted(folder))
        client.store("1:5", "+FLAGS", "(\\Deleted)")
        client.expunge()
        later_id, later = message("binh", folder, 999)
        client.append(quoted(folder), "(\\Flagged)", None, later)
        gone = mailbox_contents(client, folder)
    assert len(gone) == len(before) - 5 + 1

    result = hopthu("backup", "restore", "--inventory", "lab", "--host", STORE,
                    "--mailbox", user.address)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert re.search(rf"{re.escape(user.address)}: restored 5 messages", result.stdout), \
        result.stdout
    with imap(user) as client:
        after = mailbox_contents(client, folder)
    assert {k: v for k, v in after.items() if k != later_id} == before, \
        "the restored folder differs from the backup"
    assert after[later_id] == frozenset({"\\Flagged"}), "mail that came after the backup changed"


# --- Append-only: history survives the store (ART11-7-BACKUP) --------------------------------------


#: borg on mail1 as someone holding its key would run it: the tool's key,
#: its pinned host key, its passphrase and its own borg cache.
ATTACKER_ENV = (
    "export BORG_PASSCOMMAND='cat /etc/hopthu/backup/passphrase' "
    "BORG_BASE_DIR=/var/lib/hopthu/backup/borg "
    "BORG_RSH='ssh -i /etc/hopthu/backup/id_ed25519 -o IdentitiesOnly=yes "
    "-o UserKnownHostsFile=/etc/hopthu/backup/known_hosts -o StrictHostKeyChecking=yes "
    "-o BatchMode=yes'; "
    "REPO=$(python3 -c \"import json; print(json.loads(''.join(l for l in "
    "open('/etc/hopthu/backup/backup.conf') if not l.lstrip().startswith('#')))"
    "['client']['repository'])\"); "
)


@pytest.mark.control("ART11-7-BACKUP")
def test_a_store_cannot_destroy_history_and_the_runbook_recovers_its_archives(
    first_backup: str,
) -> None:
    # The backup host records what it keeps (its prune run), then one more backup.
    rc, out, err = run_on(KEEPER, f"{TOOL} prune")
    assert rc == 0, out + err
    assert first_backup in keeper_archives(), "the retention pruned the first backup already"
    second = backup_now()
    time.sleep(2)
    before_attack = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(2)

    # On mail1, with its own key: delete, prune, compact. borg says they worked.
    for attack in (f'borg delete "$REPO::{first_backup}"', 'borg prune --keep-last 1 "$REPO"',
                   'borg compact "$REPO"'):
        rc, out, err = run_on(STORE, ATTACKER_ENV + attack)
        assert rc == 0, f"`{attack}` from mail1 failed outright ({err}); the test expects " \
                        "borg's append-only behaviour: it appears to succeed"
    rc, out, err = run_on(STORE, ATTACKER_ENV + 'BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=YES '
                                                'borg delete "$REPO"')
    assert rc != 0 and "append-only" in err, f"mail1 could delete its repository: {out}{err}"
    assert keeper_archives() == [second], "the attack did not hide the older archives"

    # The backup host refuses to make it permanent.
    rc, out, err = run_on(KEEPER, f"{TOOL} prune")
    assert rc == 1
    assert "archives vanished since this host last pruned: " in out and first_backup in out
    assert "Nothing was pruned or compacted" in out

    # The runbook (roles/backup/README.md): find the last good transaction, roll back.
    rc, out, err = run_on(KEEPER, f"{TOOL} transactions {STORE}")
    assert rc == 0 and "a client (append-only)" in out, out + err
    rc, out, err = run_on(KEEPER, f"{TOOL} rollback {STORE} --before {before_attack}")
    assert rc == 0 and "dry run" in out, out + err
    rc, out, err = run_on(KEEPER, f"{TOOL} rollback {STORE} --before {before_attack} --yes")
    assert rc == 0 and "borg check passed" in out, out + err
    kept_copy = re.search(r"kept the repository as it was in (\S+)", out)
    assert {first_backup, second} <= set(keeper_archives())

    # mail1's borg cache saw the undone transactions: borg refuses until the
    # runbook's next step clears it.
    refused = hopthu("backup", "now", "--inventory", "lab", "--host", STORE)
    assert refused.returncode == 1 and "forget-cache" in refused.stderr, refused.stderr
    on_host(STORE, f"{TOOL} forget-cache")
    backup_now()
    result = hopthu("backup", "drill", "--inventory", "lab", "--host", STORE,
                    "--archive", first_backup)
    assert result.returncode == 0, f"the recovered archive does not verify:\n{result.stdout}"
    rc, out, err = run_on(KEEPER, f"{TOOL} prune")
    assert rc == 0, f"the retention fails after the recovery: {out}{err}"
    if kept_copy:
        on_host(KEEPER, f"rm -rf {shlex.quote(kept_copy.group(1))}")


# --- Clear failures (ART11-7-BACKUP) -------------------------------------------------------------------


@contextlib.contextmanager
def wrong_passphrase() -> Iterator[None]:
    on_host(STORE, "cp -p /etc/hopthu/backup/passphrase /root/backup-passphrase.saved && "
                   "printf 'not-the-lab-passphrase-%s\\n' $$ > /etc/hopthu/backup/passphrase")
    try:
        yield
    finally:
        on_host(STORE, "mv -f /root/backup-passphrase.saved /etc/hopthu/backup/passphrase")


@contextlib.contextmanager
def deleted_repository() -> Iterator[None]:
    # Moved away, as a deletion looks to borg; put back afterwards.
    on_host(KEEPER, f"mv /srv/borg/{STORE} /srv/borg/.{STORE}.hidden-by-test")
    try:
        yield
    finally:
        on_host(KEEPER, f"mv /srv/borg/.{STORE}.hidden-by-test /srv/borg/{STORE}")


@contextlib.contextmanager
def unreachable_backup_host() -> Iterator[None]:
    # A table of the test's own on mail1, removed afterwards: the role's
    # firewall (/etc/nftables.conf) is not touched.
    target = "198.18.0.20"
    on_host(STORE, "nft add table inet hopthu_backup_test && nft add chain inet "
                   "hopthu_backup_test out '{ type filter hook output priority 0; }' && "
                   f"nft add rule inet hopthu_backup_test out ip daddr {target} tcp dport 22 "
                   "reject with tcp reset")
    try:
        yield
    finally:
        on_host(STORE, "nft delete table inet hopthu_backup_test")


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.parametrize(("fault", "says"), [
    (wrong_passphrase, "wrong passphrase"),
    (deleted_repository, "does not exist"),
    (unreachable_backup_host, "cannot be reached over SSH"),
], ids=["wrong-passphrase", "deleted-repository", "unreachable-backup-host"])
def test_a_broken_backup_fails_loudly_and_fails_the_check(first_backup: str, fault: Any,
                                                          says: str) -> None:
    with fault():
        result = hopthu("backup", "now", "--inventory", "lab", "--host", STORE)
        assert result.returncode == 1, f"the backup did not fail:\n{result.stdout}"
        assert says in result.stderr, result.stderr
        state = json.loads(on_host(STORE, "cat /var/lib/hopthu/backup/last.json"))
        assert state["result"] == "failed" and says in state["message"], state
        check = infra_check("test_the_last_backup_of_the_store_succeeded_and_is_recent")
        assert check.returncode == 1, f"the infra suite passed a failed backup:\n{check.stdout}"
        assert says in check.stdout, check.stdout[-3000:]
    backup_now()
    check = infra_check("test_the_last_backup_of_the_store_succeeded_and_is_recent")
    assert check.returncode == 0, check.stdout[-3000:]


# --- Disaster recovery (ART11-7-RESTORE) ---------------------------------------------------------------


@pytest.mark.control("ART11-7-RESTORE")
def test_a_destroyed_store_is_rebuilt_and_restored_with_every_message_and_password(
    corpus: Corpus, first_backup: str,
) -> None:
    from hopthu.engines import run_engine
    from hopthu.lab import recreate

    before_disk = live_manifest()
    before_imap = read_corpus(corpus)
    last = backup_now()
    drilled = hopthu("backup", "drill", "--inventory", "lab", "--host", STORE)
    assert drilled.returncode == 0, drilled.stdout

    # The disaster: mail1 is gone, disks and all.
    recreate(STORE)
    # The rebuild: a deploy of the new mail1, and of backup1, which learns
    # the new host's key (peer1 keeps serving the ministry's DKIM record).
    rebuilt = run_engine("ansible", "lab", limit=f"{STORE},{KEEPER}")
    assert rebuilt.ok, rebuilt.explain(tail=4000)
    assert len(live_manifest()) < len(before_disk), \
        "the new mail1 still has the old mail: it was not destroyed"

    restored = hopthu("backup", "restore", "--inventory", "lab", "--host", STORE, "--all",
                      "--archive", last, "--yes")
    assert restored.returncode == 0, f"{restored.stdout}\n{restored.stderr}"
    assert "restored the user database" in restored.stdout
    # A deploy after the restore: the controller takes back the restored DKIM
    # record (the one the DNS publishes), and the host is converged again.
    again = run_engine("ansible", "lab", limit=STORE)
    assert again.ok, again.explain(tail=4000)

    after_disk = live_manifest()
    missing = sorted(set(before_disk) - set(after_disk))
    changed = sorted(k for k in before_disk if k in after_disk and after_disk[k] != before_disk[k])
    assert not missing and not changed, (
        f"after the restore {len(missing)} messages are missing and {len(changed)} differ in "
        f"content or flags: {(missing + changed)[:10]}")
    refused = []
    for user, password in corpus.passwords.items():
        try:
            with imap_as(user, password):
                pass
        except imaplib.IMAP4.error as exc:
            refused.append(f"{user}: {exc}")
    assert not refused, f"accounts cannot log in with their current password: {refused}"
    after_imap = read_corpus(corpus)
    differs = {box: (len(before_imap[box]), len(after_imap.get(box, {})))
               for box in before_imap if after_imap.get(box) != before_imap[box]}
    assert not differs, f"folders whose messages or flags differ (before, after): {differs}"
