"""What the mail deploys (pki, userdb, postfix, dovecot) share: the host's settings.

Each deploy renders with the host's settings as Ansible's plays see them
after the common role: ``common__debian_major`` is the release the host
runs (the common role's set_fact), not the value offline rendering assumes.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.facts.server import LinuxDistribution

from hopthu.deploys import reload_settings, settings


def host_settings() -> dict[str, Any]:
    """The current host's settings, with ``common__debian_major`` read from the host.

    The common deploy has already refused an unsupported release, so the
    fact is 12 or 13 here.
    """
    values = settings()
    major = host.get_fact(LinuxDistribution).get("major")
    if major is not None and values.get("common__debian_major") != int(major):
        values = reload_settings({"common__debian_major": int(major)})
    return values
