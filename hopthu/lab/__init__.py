"""The lab: a small data centre of systemd-nspawn hosts on this machine (DESIGN.md §5).

The Python API, for tests, molecule and `make lab`::

    from hopthu import lab

    lab.up()                          # or lab.up(["mail1"], suite="bookworm")
    rc, out, err = lab.ssh_run("mail1", "systemctl is-system-running")
    lab.recreate("mail2")             # a fresh clone of the same suite
    lab.status()["state"]             # "up", "partial" or "absent"
    lab.down()

    lab.ssh_config_path()             # for `ssh -F` and testinfra's ssh_config
    lab.proxy_url()                   # the value for common__apt_proxy

Failures raise LabError, whose message says what failed and what to do.
The modules, one job each: state (paths, lock), images (cached base
images), machines (clones, boot, stop), network (bridge, isolation),
proxy (apt-cacher-ng), ssh (key, pinning, config, running commands),
lifecycle (up, down, recreate, status), command (the CLI).
"""

from hopthu.lab.errors import LabError
from hopthu.lab.lifecycle import down, inventory_hosts, recreate, status, up
from hopthu.lab.ssh import SshResult, ssh_run
from hopthu.lab.state import (
    key_path,
    known_hosts_path,
    lab_dir,
    proxy_url,
    ssh_config_path,
)

__all__ = [
    "LabError",
    "SshResult",
    "down",
    "inventory_hosts",
    "key_path",
    "known_hosts_path",
    "lab_dir",
    "proxy_url",
    "recreate",
    "ssh_config_path",
    "ssh_run",
    "status",
    "up",
]
