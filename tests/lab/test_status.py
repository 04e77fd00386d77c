"""`hopthu status` on the lab: all well on a converged lab, and plain about what is not (Art. 11.1).

The command runs as an operator runs it, on the controller, and reaches the
hosts over the lab's SSH. The faults are ones that touch no mail daemon (the
lab's hosts share one cgroup tree, so stopping a daemon on one host can
disturb its twin; see test_self_healing.py): a failed backup recorded on
client1, where no backup runs, and a host in the inventory that does not
exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mailcore import on_host

from hopthu import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("converged_lab")]

HOPTHU = Path(sys.executable).parent / "hopthu"
BACKUP_DIR = "/var/lib/hopthu/backup"
#: Where no host answers: in the lab's internal zone, but no host has it.
GHOST = "198.18.0.99"


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HOPTHU), "status", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)


@pytest.mark.control("ART11-1-UPTIME")
def test_the_status_of_the_converged_lab_has_no_failure() -> None:
    done = status("--inventory", "lab", "--format", "json")
    document = json.loads(done.stdout)
    failing = [f"{h['name']}: {c['message']} — what to do: {c['fix']}"
               for h in document["hosts"] for c in h["checks"] if c["state"] == "fail"]
    assert done.returncode == 0 and not failing, "\n".join(failing) or done.stderr
    mail1 = next(h for h in document["hosts"] if h["name"] == "mail1")
    states = {c["id"]: c["state"] for c in mail1["checks"]}
    for check in ("service:postfix", "service:dovecot", "service:rspamd", "service:clamd",
                  "service:redis", "service:nginx", "rspamd", "clamd", "queue", "certificate"):
        assert states.get(check) == "ok", f"mail1's {check} is {states.get(check)}: {mail1}"


@pytest.mark.control("ART11-1-UPTIME")
def test_a_failed_backup_fails_the_status_and_says_what_to_do() -> None:
    created = on_host("client1", f"test -d {BACKUP_DIR} || {{ mkdir -p {BACKUP_DIR} && "
                      "echo created; }").strip() == "created"
    state = {"result": "failed", "finished_at": "2026-01-12T01:03:00+00:00",
             "message": "the lab's status test: wrong passphrase",
             "last_success_at": None}
    on_host("client1", f"cat > {BACKUP_DIR}/last.json <<'EOF'\n{json.dumps(state)}\nEOF")
    try:
        done = status("--inventory", "lab", "--host", "client1")
    finally:
        on_host("client1", f"rm -f {BACKUP_DIR}/last.json"
                + (f" && rmdir {BACKUP_DIR}" if created else ""))
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("✗ The last backup failed at 2026-01-12T01:03:00+00:00 (the lab's status test: "
            "wrong passphrase) — what to do: fix what it says, then run one: "
            "`systemctl start hopthu-backup.service` on client1") in done.stdout, done.stdout
    assert "hopthu status: FAILED: 0 hosts without failures; 1 with failures: client1 " \
        "(1 failure)" in done.stdout


@pytest.mark.control("ART11-1-UPTIME")
def test_a_host_that_does_not_answer_fails_with_a_hint_and_the_others_are_checked(
    tmp_path: Path,
) -> None:
    # The lab's inventory, with one more internal client that does not exist.
    inventory = tmp_path / "lab"
    shutil.copytree(ROOT / "inventories" / "lab", inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text(encoding="utf-8"))
    hosts["all"]["children"]["lab_client"]["hosts"]["ghost1"] = None
    hosts["all"]["hosts"]["ghost1"] = {"ansible_host": GHOST}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    done = status("--inventory", str(inventory / "hosts.yml"), "--host", "ghost1",
                  "--host", "client1")
    assert done.returncode == 1, done.stdout + done.stderr
    ghost = done.stdout.split("\nghost1 (")[1].split("\n\n")[0]
    assert f"✗ ghost1 cannot be reached over SSH (ssh: connect to host {GHOST} port 22" in ghost
    assert "what to do: is the lab up? `hopthu lab status`" in ghost
    assert f"{GHOST} true" in ghost, "the hint gives the ssh command to try by hand"
    client = done.stdout.split("\nclient1 (")[1].split("\n\n")[0]
    assert "✓ SSH is running (ssh.service) and answers on port 22" in client
    assert "✗" not in client
    assert done.stdout.rstrip().endswith("1 host without failures; 1 with failures: ghost1 "
                                         "(unreachable)")
