"""Project-wide settings: the `hopthu__*` namespace.

Values that belong to no single role and that several roles or tools read.
They have no role defaults: top-level `group_vars/all.yml` sets them (see
group_vars/README.md). Keep this namespace small; a value one role owns
belongs in that role's namespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.types import (
    DomainName,
    RestartSeconds,
    StartLimitBurst,
    StartLimitInterval,
    checked,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _environment(value: str) -> None:
    if not _NAME.match(value):
        raise ValueError("is not an environment name")


EnvironmentName = checked(
    str,
    "an environment name of letters, digits, '_', '.' and '-': the inventory directory's "
    "name, e.g. lab or production",
    _environment,
)


def start_limit_check(
    key: str, restart_sec: int, burst: int, interval_sec: int
) -> CrossCheck | None:
    """A problem when a daemon restarted every `restart_sec` never reaches the start limit.

    systemd starts a unit that died again after RestartSec=, and gives up
    (the unit ends "failed") at the StartLimitBurst-th start within
    StartLimitIntervalSec=. Starts at least `restart_sec` apart fit `burst`
    times into the interval only if `burst` × `restart_sec` is shorter;
    otherwise a daemon that fails at every start is restarted forever.
    """
    if burst * restart_sec < interval_sec:
        return None
    return CrossCheck(
        (key,), restart_sec,
        f"is so long that {burst} starts (hopthu__service_start_limit_burst) take "
        f"{burst * restart_sec} s, not less than hopthu__service_start_limit_interval_sec = "
        f"{interval_sec} s: a daemon that fails at every start would never reach the start "
        "limit and would be restarted forever",
        f"fewer than {-(-interval_sec // burst)} seconds, or (group_vars/all.yml) a longer "
        "hopthu__service_start_limit_interval_sec or a smaller "
        "hopthu__service_start_limit_burst",
    )


class ProjectSettings(SettingsModel):
    """Values every role and tool may read."""

    namespace = "hopthu"
    is_role = False

    hopthu__environment: EnvironmentName = Field(
        description=(
            "The name of the environment (the inventory directory: lab, staging, production). "
            "Derived from inventory_dir in group_vars/all.yml, so each environment gets its "
            "own name without setting it."
        )
    )

    hopthu__mail_domain: DomainName = Field(
        description=(
            "The ministry's mail domain: every address is account@<this> (Art. 4). "
            "The lab uses the real name too; its DNS on peer1 answers for it, so the lab "
            "resolves it exactly as the Internet would, and no traffic leaves the lab."
        )
    )

    # --- Self-healing services (Art. 11.1) ----------------------------------------
    hopthu__service_restart_sec: RestartSeconds = Field(
        description=(
            "Seconds systemd waits before it starts a mail daemon that died (RestartSec= in "
            "the unit drop-ins of Postfix, Dovecot, Rspamd, Redis and nginx, and the portal's "
            "unit; clamd has its own, clamav__restart_sec). Project-wide: the roles that "
            "read it run in different plays, and Ansible shows a role's defaults only to "
            "its own play."
        )
    )
    hopthu__service_stop_timeout_sec: RestartSeconds = Field(
        description=(
            "Seconds systemd gives what is left of a mail daemon's processes to end after a "
            "stop or after its main process died, before it kills them (TimeoutStopSec= in "
            "the drop-ins of Postfix, Dovecot, Rspamd, clamd and nginx, and the portal's "
            "unit; not Redis, which saves its data when it stops)."
        )
    )
    hopthu__service_start_limit_burst: StartLimitBurst = Field(
        description=(
            "How many starts systemd allows a mail daemon within "
            "hopthu__service_start_limit_interval_sec (StartLimitBurst=): a daemon that fails "
            "at every start ends \"failed\" instead of restarting forever. Manual and "
            "deploy restarts count too."
        )
    )
    hopthu__service_start_limit_interval_sec: StartLimitInterval = Field(
        description=(
            "The window, in seconds, in which systemd counts a mail daemon's starts "
            "(StartLimitIntervalSec=). It must be longer than the burst times the restart "
            "delay, or a failing daemon never reaches the limit."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        problem = start_limit_check(
            "hopthu__service_restart_sec",
            self.hopthu__service_restart_sec,
            self.hopthu__service_start_limit_burst,
            self.hopthu__service_start_limit_interval_sec,
        )
        if problem is not None:
            yield problem
