"""The backup deploy: borg backups of each mail store to the backup host (Art. 11.7).

Where it sits. After the mail flow, not in it: every night each store host
(backup__client_enabled) sends its mailboxes, a consistent copy of its user
database, the mail services' /etc, its DKIM and TLS keys and the accounts
audit log to its own borg repository on the backup host
(backup__server_enabled), over SSH, with a key made on the store. The backup
host's authorized_keys forces that key to `borg serve --append-only
--restrict-to-repository /srv/borg/<store>`: a compromised store can add
archives, never remove history. Only the backup host prunes and compacts,
and it refuses to after archives vanished. It also drills the latest
archives: extracts them and verifies every message against the manifest
taken at backup time. `hopthu backup restore` puts a mailbox or a whole
store back.

What it owns. On both sides: /usr/local/sbin/hopthu-backup (the tool),
/etc/hopthu/backup/backup.conf and passphrase (from the inventory's secrets,
backup__passphrase_file), /var/lib/hopthu/backup (its state). On a store: its
key /etc/hopthu/backup/id_ed25519 (made once, never leaves the host; the
public half goes to the controller, backup__keys_dir), the backup host's
pinned key (known_hosts), hopthu-backup.service and .timer. On the backup
host: the borg user and /srv/borg, its authorized_keys, the prune and drill
services and timers.

How a change is checked. The tool is syntax-checked before it is written;
the keys are checked on the controller before they are written into
authorized_keys or known_hosts; a repository is made only where none exists.
The timers read their units after the daemon-reload.

One run on a new site. pyinfra runs each step on every host before the next
step, as Ansible's play does, but it renders a file while it prepares the
run: before the store's key (or the backup host's) reaches the controller.
So the two files made from the controller's copies, authorized_keys and
known_hosts, are rendered again when the step runs whenever the key they
depend on is not yet on the controller, or differs from the one on its host
(``put_controller_template``); otherwise they are compared and uploaded like
any template.

roles/backup/ does the same steps, in the same order, under the same names
(tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyinfra import host, state
from pyinfra.api import FileUploadCommand, FunctionCommand, StringCommand, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File, FileContents, Sha1File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed
from pyinfra.operations.util.files import ensure_mode_int

from hopthu.backup import passphrase
from hopthu.deploys import command_creates, put_template
from hopthu.deploys.mailhost import host_settings
from hopthu.deploys.secret_files import put_secret
from hopthu.render import render

TOOL = "/usr/local/sbin/hopthu-backup"
CLIENT_KEY = "/etc/hopthu/backup/id_ed25519"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
ENABLED_SINCE = "/var/lib/hopthu/backup/enabled-since"

#: The role's scripts, byte for byte (tests/unit/test_backup_role.py compares
#: them with roles/backup/tasks/main.yml). $1: the store's name.
KEYGEN_SCRIPT = """\
set -eu
umask 077
key=/etc/hopthu/backup/id_ed25519
rm -f "$key.new" "$key.new.pub"
ssh-keygen -q -t ed25519 -N '' -C "hopthu-backup@$1" -f "$key.new"
chmod 0644 "$key.new.pub"
mv -f "$key.new" "$key"
mv -f "$key.new.pub" "$key.pub"
"""

ENABLED_SINCE_SCRIPT = """\
set -eu
file=/var/lib/hopthu/backup/enabled-since
date -u +%Y-%m-%dT%H:%M:%SZ > "$file.new"
mv -f "$file.new" "$file"
"""


def client_copy(keys_dir: str, name: str) -> Path:
    """The controller's copy of a store's public backup key."""
    return Path(keys_dir) / f"{name}.client.pub"


def host_copy(keys_dir: str, name: str) -> Path:
    """The controller's copy of the backup host's SSH host key."""
    return Path(keys_dir) / f"{name}.host.pub"


def prepare_passphrase(values: Mapping[str, Any], *, name: str) -> bytes:
    """The role's controller step: check (or, in the lab, make) the passphrase file.

    It runs while pyinfra prepares the operations, so the uploads below can
    compare; a missing file stops the run before any host changes.
    """
    try:
        passphrase.ensure(values["backup__passphrase_file"],
                          generate=bool(values["backup__passphrase_generate"]))
        return passphrase.read(values["backup__passphrase_file"])
    except passphrase.PassphraseError as exc:
        raise DeployError(f"{name}: {host.name}: {exc}") from None


def _differs_on_host(name: str, path: str, copy: Path) -> bool:
    """Whether host `name`, in this run, holds at `path` another key than the controller's copy.

    True when the host has no key yet (it makes one in this run) or the
    controller has no copy. A host outside this run (--limit) counts as
    unchanged: its copy is what it was.
    """
    other = state.inventory.get_host(name, None)
    if other is None or other not in state.active_hosts:
        return False
    try:
        remote = other.get_fact(FileContents, path=path)
    except Exception:  # noqa: BLE001 - unknown: render at prepare time, as usual
        return False
    local = copy.read_text(encoding="ascii").strip() if copy.is_file() else None
    return remote is None or local is None or "\n".join(remote).strip() != local


def _refill(buffer: io.BytesIO, template: str, variables: dict[str, Any]) -> None:
    """Render `template` again, now that the keys it reads are on the controller."""
    data = render(template, variables).encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    buffer.write(data)
    buffer.seek(0)


@operation()
def controller_put_template(template: str, dest: str, user: str, group: str, mode: str,
                            variables: Mapping[str, Any], pending: bool = False):
    """Upload a template that reads files this same run copies to the controller.

    + template, dest, user, group, mode: as put_template
    + variables: the host's settings
    + pending: a file the template reads changes in this run: render it again
      when the step runs (the upload then always counts as a change)

    Otherwise the file is rendered now, compared by SHA-1 and uploaded only
    when it differs, like put_template.
    """
    wanted_mode = ensure_mode_int(mode)
    data = render(template, variables).encode("utf-8")
    remote = host.get_fact(File, path=dest)
    same = bool(remote) and host.get_fact(Sha1File, path=dest) == hashlib.sha1(data).hexdigest()
    if same and not pending:
        if remote["mode"] != wanted_mode:
            yield StringCommand("chmod", str(wanted_mode), dest)
        if remote["user"] != user or remote["group"] != group:
            yield StringCommand("chown", f"{user}:{group}", dest)
        return
    buffer = io.BytesIO(data)
    if pending:
        yield FunctionCommand(_refill, (buffer, template, dict(variables)), {})
    temp = host.get_temp_filename(f"hopthu-controller-put:{dest}")
    yield FileUploadCommand(buffer, temp, remote_temp_filename=host.get_temp_filename(temp))
    yield StringCommand("chown", f"{user}:{group}", temp)
    yield StringCommand("chmod", str(wanted_mode), temp)
    yield StringCommand("mv", "-f", temp, dest)


def apply() -> None:
    """Converge the current host (deploy.py calls it for mail_store and mail_backup)."""
    values = host_settings()
    client = bool(values["backup__client_enabled"])
    serves = bool(values["backup__server_enabled"])
    keys_dir = values["backup__keys_dir"]
    name = values["backup__host_name"]

    apt.packages(
        name="Install borgbackup",
        packages=values["backup__packages"],
        present=True,
    )
    secret = prepare_passphrase(values, name="Prepare the backup passphrase on the controller")
    files.directory(
        name="Create the backup settings directory",
        path="/etc/hopthu/backup",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )

    # --- A store's key: made on the store, its public half to the controller --------
    if client:
        command_creates(
            name="Generate the backup SSH key on the store host",
            argv=["sh", "-c", KEYGEN_SCRIPT, "backup-keygen", name],
            creates=f"{CLIENT_KEY}.pub",
        )
        files.get(
            name="Copy the backup SSH public key to the controller",
            src=f"{CLIENT_KEY}.pub",
            dest=str(client_copy(keys_dir, name)),
            add_deploy_dir=False,
            create_local_dir=True,
        )
        files.directory(
            name="Create the backup state directory on a store host",
            path="/var/lib/hopthu/backup",
            present=True,
            user="root",
            group="root",
            mode="0750",
        )

    # --- The backup host: the borg user, its repositories, the stores' keys ---------
    if serves:
        server.group(
            name="Create the borg group",
            group="borg",
            system=True,
            present=True,
        )
        # A shell, because sshd runs the forced command through it.
        server.user(
            name="Create the borg user",
            user="borg",
            group="borg",
            home="/srv/borg",
            create_home=False,
            shell="/bin/sh",
            system=True,
            present=True,
        )
        files.directory(
            name="Create the repository directory",
            path="/srv/borg",
            present=True,
            user="borg",
            group="borg",
            mode="0700",
        )
        # root's, not borg's: nothing that runs as borg can change the keys.
        files.directory(
            name="Create the borg user's SSH directory",
            path="/srv/borg/.ssh",
            present=True,
            user="root",
            group="root",
            mode="0755",
        )
        controller_put_template(
            name="Render the backup clients' authorized keys",
            template="srv/borg/.ssh/authorized_keys.j2",
            dest="/srv/borg/.ssh/authorized_keys",
            user="root",
            group="root",
            mode="0644",
            variables=values,
            pending=any(_differs_on_host(c, f"{CLIENT_KEY}.pub", client_copy(keys_dir, c))
                        for c in values["backup__clients"]),
        )
        files.get(
            name="Copy the backup host's SSH host key to the controller",
            src=HOST_KEY,
            dest=str(host_copy(keys_dir, name)),
            add_deploy_dir=False,
            create_local_dir=True,
        )
        files.directory(
            name="Create the backup state directory on the backup host",
            path="/var/lib/hopthu/backup",
            present=True,
            user="borg",
            group="borg",
            mode="0750",
        )

    # --- Both sides: the passphrase, the tool and what it does here ----------------
    if client:
        put_secret(
            name="Install the backup passphrase on a store host",
            data=secret,
            dest="/etc/hopthu/backup/passphrase",
            user="root",
            group="root",
            mode="0600",
        )
    if serves:
        put_secret(
            name="Install the backup passphrase on the backup host",
            data=secret,
            dest="/etc/hopthu/backup/passphrase",
            user="root",
            group="borg",
            mode="0640",
        )
    put_template(
        name="Render the backup tool",
        template="usr/local/sbin/hopthu-backup.j2",
        dest="/usr/local/sbin/hopthu-backup",
        user="root",
        group="root",
        mode="0755",
        validate='python3 -I -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" %s',
        variables=values,
    )
    put_template(
        name="Render the backup settings",
        template="etc/hopthu/backup/backup.conf.j2",
        dest="/etc/hopthu/backup/backup.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    prune_service = prune_timer = drill_service = drill_timer = service = timer = None
    if serves:
        # As borg (the tool switches to it), only where the repository is
        # missing: `borg init` never runs over a repository.
        for store in values["backup__clients"]:
            command_creates(
                name="Make each store host's repository on the backup host",
                argv=[TOOL, "init-repository", store],
                creates=f"/srv/borg/{store}/config",
            )
        prune_service = put_template(
            name="Render the prune service",
            template="etc/systemd/system/hopthu-backup-prune.service.j2",
            dest="/etc/systemd/system/hopthu-backup-prune.service",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
        prune_timer = put_template(
            name="Render the prune timer",
            template="etc/systemd/system/hopthu-backup-prune.timer.j2",
            dest="/etc/systemd/system/hopthu-backup-prune.timer",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
        drill_service = put_template(
            name="Render the drill service",
            template="etc/systemd/system/hopthu-backup-drill.service.j2",
            dest="/etc/systemd/system/hopthu-backup-drill.service",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
        drill_timer = put_template(
            name="Render the drill timer",
            template="etc/systemd/system/hopthu-backup-drill.timer.j2",
            dest="/etc/systemd/system/hopthu-backup-drill.timer",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )

    # --- A store again: the backup host's key, the timer -------------------------------
    if client:
        server_host = values["backup__server_host"]
        controller_put_template(
            name="Render the backup host's pinned SSH key",
            template="etc/hopthu/backup/known_hosts.j2",
            dest="/etc/hopthu/backup/known_hosts",
            user="root",
            group="root",
            mode="0644",
            variables=values,
            pending=_differs_on_host(server_host, HOST_KEY, host_copy(keys_dir, server_host)),
        )
        command_creates(
            name="Record when backups were enabled on the store host",
            argv=["sh", "-c", ENABLED_SINCE_SCRIPT],
            creates=ENABLED_SINCE,
        )
        service = put_template(
            name="Render the backup service",
            template="etc/systemd/system/hopthu-backup.service.j2",
            dest="/etc/systemd/system/hopthu-backup.service",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
        timer = put_template(
            name="Render the backup timer",
            template="etc/systemd/system/hopthu-backup.timer.j2",
            dest="/etc/systemd/system/hopthu-backup.timer",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
    # Now: the timers below start with their units in force.
    systemd.daemon_reload(
        name="Reload systemd units after a backup unit change",
        _if=any_changed(*(unit for unit in (prune_service, prune_timer, drill_service,
                                            drill_timer, service, timer) if unit is not None)),
    )
    if client:
        systemd.service(
            name="Enable and start the backup timer",
            service="hopthu-backup.timer",
            running=True,
            enabled=True,
        )
    if serves:
        systemd.service(
            name="Enable and start the prune timer",
            service="hopthu-backup-prune.timer",
            running=True,
            enabled=True,
        )
        systemd.service(
            name="Enable and start the drill timer",
            service="hopthu-backup-drill.timer",
            running=True,
            enabled=True,
        )
