"""The redis deploy: Rspamd's store on the MX hosts.

Where it sits. Beside Rspamd, on every mail_mx host. Rspamd keeps there what
must outlive one message: the Bayes statistics users teach it by filing mail
into and out of Junk, greylisting records, the outbound rate limit buckets
of each authenticated user, scan caches and the message history of its web
interface. Mail does not pass through Redis; if Redis is down, Rspamd still
scans, without Bayes, greylisting or rate limits.

What it owns. /etc/redis/redis.conf, whole, and the drop-in that sets
systemd's restart policy for it (redis-server.service.d/hopthu.conf). The
data stays in Debian's /var/lib/redis.

How a change is checked. Redis has no configuration checker and cannot
reload its file, so a change restarts it; the settings check validates each
value before any host is touched, and "Check that Redis answers" fails the
run if Redis did not come back. roles/redis/README.md says more.

roles/redis/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings

#: roles/redis/tasks/main.yml's statoverride step, the same shell.
STATOVERRIDE_SCRIPT = (
    'f=/etc/redis/redis.conf; '
    '[ "$(dpkg-statoverride --list "$f")" = "root redis 640 $f" ] && exit 0; '
    'dpkg-statoverride --remove "$f" >/dev/null 2>&1; '
    'dpkg-statoverride --add root redis 640 "$f" && echo changed'
)
STATOVERRIDE_WANTED = "root redis 640 /etc/redis/redis.conf"

#: The role's check handler (roles/redis/handlers/main.yml): PING must answer PONG.
PING_SCRIPT = 'test "$(redis-cli -h 127.0.0.1 -p {port} ping)" = PONG'


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_mx host)."""
    values = host_settings()

    apt.packages(
        name="Install Redis",
        packages=values["redis__packages"],
        present=True,
    )
    # Read while the run is prepared; on a fresh host (no package yet) the
    # step runs, as it does in Ansible.
    current = host.get_fact(
        Command, "dpkg-statoverride --list /etc/redis/redis.conf 2>/dev/null || true")
    server.shell(
        name="Register root as the owner of the Redis configuration with dpkg",
        commands=[STATOVERRIDE_SCRIPT],
        _if=lambda: (current or "").strip() != STATOVERRIDE_WANTED,
    )
    config = put_template(
        name="Render the Redis configuration",
        template="etc/redis/redis.conf.j2",
        dest="/etc/redis/redis.conf",
        user="root",
        group="redis",
        mode="0640",
        variables=values,
    )
    # --- Self-healing (Art. 11.1, roles/redis/README.md) ------------------------------
    # systemd restarts Redis when it stops (Restart=always, as Debian has it).
    # Restart= and the start limits take effect with the daemon-reload; Redis is
    # not restarted.
    files.directory(
        name="Create the Redis unit drop-in directory",
        path="/etc/systemd/system/redis-server.service.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    dropin = put_template(
        name="Render the Redis unit drop-in",
        template="etc/systemd/system/redis-server.service.d/hopthu.conf.j2",
        dest="/etc/systemd/system/redis-server.service.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Now, not at the end: Redis is started below with the drop-in in force.
    systemd.daemon_reload(
        name="Reload systemd units after a Redis drop-in change",
        _if=dropin.did_change,
    )
    systemd.service(
        name="Enable and start Redis",
        service="redis-server.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change ---------

    systemd.service(
        name="Restart Redis",
        service="redis-server.service",
        running=True,
        restarted=True,
        _if=config.did_change,
    )
    server.shell(
        name="Check that Redis answers",
        commands=[PING_SCRIPT.format(port=int(values["redis__port"]))],
        _if=config.did_change,
    )
