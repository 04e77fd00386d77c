"""The rspamd deploy: spam and virus filtering, DKIM/ARC, DMARC, the content policy.

Where it sits. Postfix passes every message through Rspamd's milter before
it answers the sender: mail from the Internet on port 25 (after postscreen),
the ministry's users' mail on 587 and 465, and local mail. Rspamd scores it
(Bayes and greylisting state in Redis, roles/redis), sends it whole to clamd
(the clamav role), refuses viruses, blocked attachment types and banned
content with a reason, enforces the sender domain's DMARC policy on mail
from the Internet, limits how many recipients each authenticated user may
send to, signs the ministry's outbound mail with DKIM and seals inbound mail
with ARC. When Rspamd or clamd does not answer, the mail waits: nothing is
accepted unscanned (Art. 11.6, 11.5, 2, 7).

What it owns. Every file in /etc/rspamd/local.d/ and /etc/rspamd/override.d/
(MANAGED_FILES), each from a template under templates/etc/rspamd/; any other
entry there is removed (listed, not removed, with --dry). The drop-in that
sets systemd's restart policy for Rspamd (rspamd.service.d/hopthu.conf). On
the host it also makes, once, each signing domain's DKIM key
(/var/lib/rspamd/dkim; the private key never leaves the host) and its public
record, and the controller's password (/etc/hopthu/rspamd). On the controller
it keeps a copy of each DKIM public record in dns__dkim_dir, for `hopthu dns`
and the lab's DNS.

How a change is checked. Rspamd's configuration is many files read together,
so no single file can be validated alone: after any change "Check Rspamd
configuration" runs `rspamadm configtest` on the whole configuration, and
only then "Reload Rspamd". A failed check stops the run and leaves Rspamd
running on its old configuration.

roles/rspamd/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import command_creates, put_template
from hopthu.deploys.mailhost import host_settings

#: The directories the role owns whole.
DROP_IN_DIRS = ("/etc/rspamd/local.d", "/etc/rspamd/override.d")

#: Every file the role writes there: the destinations of its templates, in
#: the role's order (roles/rspamd/tasks/main.yml lists the same).
MANAGED_FILES = (
    "/etc/rspamd/override.d/options.inc",
    "/etc/rspamd/local.d/logging.inc",
    "/etc/rspamd/local.d/worker-proxy.inc",
    "/etc/rspamd/local.d/worker-normal.inc",
    "/etc/rspamd/override.d/worker-controller.inc",
    "/etc/rspamd/local.d/redis.conf",
    "/etc/rspamd/local.d/actions.conf",
    "/etc/rspamd/local.d/greylist.conf",
    "/etc/rspamd/local.d/classifier-bayes.conf",
    "/etc/rspamd/local.d/antivirus.conf",
    "/etc/rspamd/local.d/force_actions.conf",
    "/etc/rspamd/local.d/multimap.conf",
    "/etc/rspamd/local.d/hopthu_blocked_attachments.map",
    "/etc/rspamd/local.d/hopthu_banned_subject.map",
    "/etc/rspamd/local.d/hopthu_banned_body.map",
    "/etc/rspamd/local.d/mime_types.conf",
    "/etc/rspamd/local.d/dkim_signing.conf",
    "/etc/rspamd/local.d/groups.conf",
    "/etc/rspamd/local.d/arc.conf",
    "/etc/rspamd/local.d/dmarc.conf",
    "/etc/rspamd/local.d/milter_headers.conf",
    "/etc/rspamd/local.d/ratelimit.conf",
    "/etc/rspamd/local.d/rbl.conf",
    "/etc/rspamd/local.d/asn.conf",
    "/etc/rspamd/local.d/phishing.conf",
    "/etc/rspamd/local.d/fuzzy_check.conf",
    "/etc/rspamd/local.d/url_redirector.conf",
)

#: Where the keys and their public records live on the host.
DKIM_DIR = "/var/lib/rspamd/dkim"

#: The role's scripts, byte for byte (tests/unit/test_rspamd_role.py
#: compares them with roles/rspamd/tasks/main.yml). $1 domain, $2 selector,
#: $3 bits.
DKIM_KEYGEN_SCRIPT = """\
set -eu
umask 077
key="/var/lib/rspamd/dkim/$1.$2.key"
rm -f "$key.new"
rspamadm dkim_keygen -d "$1" -s "$2" -b "$3" -k "$key.new" >/dev/null
chown _rspamd:_rspamd "$key.new"
chmod 0600 "$key.new"
mv -f "$key.new" "$key"
"""

#: $1 domain, $2 selector.
DKIM_RECORD_SCRIPT = """\
set -eu
key="/var/lib/rspamd/dkim/$1.$2.key"
txt="/var/lib/rspamd/dkim/$1.$2.txt"
p=$(openssl pkey -in "$key" -pubout -outform DER | base64 -w 0)
test -n "$p"
printf 'v=DKIM1; k=rsa; p=%s\\n' "$p" > "$txt.new"
chmod 0644 "$txt.new"
mv -f "$txt.new" "$txt"
"""

CONTROLLER_PASSWORD_SCRIPT = """\
set -eu
umask 077
dir=/etc/hopthu/rspamd
pw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c 1-32)
test "$(printf '%s' "$pw" | wc -c)" -eq 32
hash=$(rspamadm pw --encrypt --password "$pw")
case "$hash" in '$'*) ;; *) echo "rspamadm pw gave no hash" >&2; exit 1;; esac
printf '%s\\n' "$pw" > "$dir/controller.password.new"
printf '# Made once on this host by hopthu (roles/rspamd); do not edit.\\npassword = "%s";\\n' "$hash" > "$dir/controller-password.inc.new"
chgrp _rspamd "$dir/controller-password.inc.new"
chmod 0640 "$dir/controller-password.inc.new"
mv -f "$dir/controller.password.new" "$dir/controller.password"
mv -f "$dir/controller-password.inc.new" "$dir/controller-password.inc"
"""

#: The file whose presence says the password exists (the role's creates:).
CONTROLLER_PASSWORD_INCLUDE = "/etc/hopthu/rspamd/controller-password.inc"


def dkim_key_path(domain: str, selector: str) -> str:
    """The private key of `domain` for `selector` on the host (Rspamd's $domain.$selector.key)."""
    return f"{DKIM_DIR}/{domain}.{selector}.key"


def dkim_record_path(domain: str, selector: str) -> str:
    """The public record ("v=DKIM1; k=rsa; p=...") beside the key, on the host."""
    return f"{DKIM_DIR}/{domain}.{selector}.txt"


def controller_copy(dkim_dir: str, domain: str, selector: str) -> str:
    """The controller's copy of a public record: named after the DNS record it is."""
    return str(PurePosixPath(dkim_dir) / f"{selector}._domainkey.{domain}.txt")


def find_drop_in_files(*, name: str, directories: Sequence[str]) -> list[str] | None:
    """The role's find task: every entry directly inside `directories`, read from the host.

    Read while pyinfra prepares the run, like Ansible's find task before its
    removal task. None when a directory does not exist yet: the package that
    makes it is installed by this very run, with files of its own (Debian's
    rspamd ships module.conf.example in both), which pyinfra cannot list
    before the run; remove_paths then decides on the host, at run time.
    """
    del name  # the step's name, for tests/unit/test_engine_shape.py
    if any(host.get_fact(Directory, path=d) is None for d in directories):
        return None
    quoted = " ".join(shlex.quote(d) for d in directories)
    listing = host.get_fact(
        Command, f"find {quoted} -mindepth 1 -maxdepth 1 -print 2>/dev/null || true"
    )
    return sorted(line for line in (listing or "").splitlines() if line.strip())


@operation()
def remove_paths(paths: list[str] | None, directories: Sequence[str] = (),
                 keep: Sequence[str] = ()):
    """Remove each of `paths` (files, links, or directories with their content).

    + paths: absolute paths; nothing is yielded for an empty list. None: the
      entries were unknown when the run was prepared (find_drop_in_files), so
      every entry of `directories` that is not in `keep` is removed on the
      host at run time.
    """
    if paths is None:
        kept = " ".join(shlex.quote(k) for k in keep)
        for directory in directories:
            yield StringCommand(
                "sh", "-c", shlex.quote(
                    'for entry in "$1"/* "$1"/.[!.]*; do [ -e "$entry" ] || continue; '
                    'mine=0; for k in $2; do [ "$entry" = "$k" ] && mine=1; done; '
                    '[ "$mine" = 1 ] || rm -rf -- "$entry"; done'),
                "purge", shlex.quote(directory), shlex.quote(kept))
        return
    for path in paths:
        yield StringCommand("rm", "-rf", "--", shlex.quote(path))


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_mx host)."""
    values = host_settings()
    selector = values["rspamd__dkim_selector"]

    apt.packages(
        name="Install Rspamd",
        packages=values["rspamd__packages"],
        present=True,
    )

    # --- DKIM keys: made on the host, the private half never leaves it -------------
    files.directory(
        name="Create the DKIM key directory",
        path="/var/lib/rspamd/dkim",
        present=True,
        user="_rspamd",
        group="_rspamd",
        mode="0750",
    )
    for domain in values["rspamd__dkim_domains"]:
        command_creates(
            name="Generate the DKIM key of each signing domain on the host",
            argv=["sh", "-c", DKIM_KEYGEN_SCRIPT, "dkim-keygen", domain, selector,
                  str(values["rspamd__dkim_key_bits"])],
            creates=dkim_key_path(domain, selector),
        )
    for domain in values["rspamd__dkim_domains"]:
        command_creates(
            name="Write the DKIM public record of each key on the host",
            argv=["sh", "-c", DKIM_RECORD_SCRIPT, "dkim-record", domain, selector],
            creates=dkim_record_path(domain, selector),
        )
    for domain in values["rspamd__dkim_domains"]:
        files.get(
            name="Copy the DKIM public records to the controller",
            src=dkim_record_path(domain, selector),
            dest=controller_copy(values["dns__dkim_dir"], domain, selector),
            add_deploy_dir=False,
            create_local_dir=True,
        )

    # --- The controller's password: made on the host, once ---------------------------
    files.directory(
        name="Create the Rspamd controller password directory",
        path="/etc/hopthu/rspamd",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    password = command_creates(
        name="Generate the Rspamd controller password on the host",
        argv=["sh", "-c", CONTROLLER_PASSWORD_SCRIPT],
        creates=CONTROLLER_PASSWORD_INCLUDE,
    )

    # --- The drop-in directories: every file from a template -------------------------
    files.directory(
        name="Create the Rspamd local.d directory",
        path="/etc/rspamd/local.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    files.directory(
        name="Create the Rspamd override.d directory",
        path="/etc/rspamd/override.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    rendered = [
        put_template(
            name="Render Rspamd override.d/options.inc",
            template="etc/rspamd/override.d/options.inc.j2",
            dest="/etc/rspamd/override.d/options.inc",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/logging.inc",
            template="etc/rspamd/local.d/logging.inc.j2",
            dest="/etc/rspamd/local.d/logging.inc",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/worker-proxy.inc",
            template="etc/rspamd/local.d/worker-proxy.inc.j2",
            dest="/etc/rspamd/local.d/worker-proxy.inc",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/worker-normal.inc",
            template="etc/rspamd/local.d/worker-normal.inc.j2",
            dest="/etc/rspamd/local.d/worker-normal.inc",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd override.d/worker-controller.inc",
            template="etc/rspamd/override.d/worker-controller.inc.j2",
            dest="/etc/rspamd/override.d/worker-controller.inc",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/redis.conf",
            template="etc/rspamd/local.d/redis.conf.j2",
            dest="/etc/rspamd/local.d/redis.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/actions.conf",
            template="etc/rspamd/local.d/actions.conf.j2",
            dest="/etc/rspamd/local.d/actions.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/greylist.conf",
            template="etc/rspamd/local.d/greylist.conf.j2",
            dest="/etc/rspamd/local.d/greylist.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/classifier-bayes.conf",
            template="etc/rspamd/local.d/classifier-bayes.conf.j2",
            dest="/etc/rspamd/local.d/classifier-bayes.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/antivirus.conf",
            template="etc/rspamd/local.d/antivirus.conf.j2",
            dest="/etc/rspamd/local.d/antivirus.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/force_actions.conf",
            template="etc/rspamd/local.d/force_actions.conf.j2",
            dest="/etc/rspamd/local.d/force_actions.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/multimap.conf",
            template="etc/rspamd/local.d/multimap.conf.j2",
            dest="/etc/rspamd/local.d/multimap.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the blocked attachment types map",
            template="etc/rspamd/local.d/hopthu_blocked_attachments.map.j2",
            dest="/etc/rspamd/local.d/hopthu_blocked_attachments.map",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the banned subject patterns map",
            template="etc/rspamd/local.d/hopthu_banned_subject.map.j2",
            dest="/etc/rspamd/local.d/hopthu_banned_subject.map",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the banned text patterns map",
            template="etc/rspamd/local.d/hopthu_banned_body.map.j2",
            dest="/etc/rspamd/local.d/hopthu_banned_body.map",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/mime_types.conf",
            template="etc/rspamd/local.d/mime_types.conf.j2",
            dest="/etc/rspamd/local.d/mime_types.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/dkim_signing.conf",
            template="etc/rspamd/local.d/dkim_signing.conf.j2",
            dest="/etc/rspamd/local.d/dkim_signing.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/groups.conf",
            template="etc/rspamd/local.d/groups.conf.j2",
            dest="/etc/rspamd/local.d/groups.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/arc.conf",
            template="etc/rspamd/local.d/arc.conf.j2",
            dest="/etc/rspamd/local.d/arc.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/dmarc.conf",
            template="etc/rspamd/local.d/dmarc.conf.j2",
            dest="/etc/rspamd/local.d/dmarc.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/milter_headers.conf",
            template="etc/rspamd/local.d/milter_headers.conf.j2",
            dest="/etc/rspamd/local.d/milter_headers.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/ratelimit.conf",
            template="etc/rspamd/local.d/ratelimit.conf.j2",
            dest="/etc/rspamd/local.d/ratelimit.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/rbl.conf",
            template="etc/rspamd/local.d/rbl.conf.j2",
            dest="/etc/rspamd/local.d/rbl.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/asn.conf",
            template="etc/rspamd/local.d/asn.conf.j2",
            dest="/etc/rspamd/local.d/asn.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/phishing.conf",
            template="etc/rspamd/local.d/phishing.conf.j2",
            dest="/etc/rspamd/local.d/phishing.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/fuzzy_check.conf",
            template="etc/rspamd/local.d/fuzzy_check.conf.j2",
            dest="/etc/rspamd/local.d/fuzzy_check.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render Rspamd local.d/url_redirector.conf",
            template="etc/rspamd/local.d/url_redirector.conf.j2",
            dest="/etc/rspamd/local.d/url_redirector.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
    ]

    # --- What the role did not write goes --------------------------------------------
    found = find_drop_in_files(
        name="Find the files in the Rspamd drop-in directories",
        directories=DROP_IN_DIRS,
    )
    removed = remove_paths(
        name="Remove the files the role did not write from the Rspamd drop-in directories",
        paths=None if found is None else [path for path in found if path not in MANAGED_FILES],
        directories=DROP_IN_DIRS,
        keep=sorted(MANAGED_FILES),
    )
    # --- Self-healing (Art. 11.1, roles/rspamd/README.md) -----------------------------
    # systemd restarts Rspamd when it stops (Restart=always, as Debian has it).
    # Restart= and the start limits take effect with the daemon-reload; Rspamd
    # is not restarted.
    files.directory(
        name="Create the Rspamd unit drop-in directory",
        path="/etc/systemd/system/rspamd.service.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    dropin = put_template(
        name="Render the Rspamd unit drop-in",
        template="etc/systemd/system/rspamd.service.d/hopthu.conf.j2",
        dest="/etc/systemd/system/rspamd.service.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Now, not at the end: Rspamd is started below with the drop-in in force.
    systemd.daemon_reload(
        name="Reload systemd units after a Rspamd drop-in change",
        _if=dropin.did_change,
    )
    systemd.service(
        name="Enable and start Rspamd",
        service="rspamd.service",
        running=True,
        enabled=True,
    )

    # --- Metrics (Art. 11.1, roles/rspamd/README.md "Metrics") ----------------------
    # The filter health collector: a timer writes Rspamd's metrics (read from
    # the controller on loopback with the password that never leaves the host)
    # and whether Rspamd and clamd answer, for the node exporter's textfile
    # collector (roles/node_exporter), which the monitor host scrapes.
    files.directory(
        name="Create the hopthu helper directory",
        path="/usr/local/lib/hopthu",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    put_template(
        name="Render the filter health collector",
        template="usr/local/lib/hopthu/filter-metrics.j2",
        dest="/usr/local/lib/hopthu/filter-metrics",
        user="root",
        group="root",
        mode="0755",
        variables=values,
    )
    metrics_service = put_template(
        name="Render the filter health collector unit",
        template="etc/systemd/system/hopthu-filter-metrics.service.j2",
        dest="/etc/systemd/system/hopthu-filter-metrics.service",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    metrics_timer = put_template(
        name="Render the filter health collector timer",
        template="etc/systemd/system/hopthu-filter-metrics.timer.j2",
        dest="/etc/systemd/system/hopthu-filter-metrics.timer",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.daemon_reload(
        name="Reload systemd units after a filter health collector change",
        _if=any_changed(metrics_service, metrics_timer),
    )
    systemd.service(
        name="Enable and start the filter health collector timer",
        service="hopthu-filter-metrics.timer",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change ---------

    changed = any_changed(password, *rendered, removed)
    server.shell(
        name="Check Rspamd configuration",
        commands=["rspamadm configtest"],
        _if=changed,
    )
    systemd.service(
        name="Reload Rspamd",
        service="rspamd.service",
        running=True,
        reloaded=True,
        _if=changed,
    )
    # A changed timer takes its new interval only when it is started again.
    server.shell(
        name="Restart the filter health collector timer",
        commands=["systemctl restart hopthu-filter-metrics.timer"],
        _if=metrics_timer.did_change,
    )
