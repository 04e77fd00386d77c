"""Project-wide settings: the `hopthu__*` namespace.

Values that belong to no single role and that several roles or tools read.
They have no role defaults: top-level `group_vars/all.yml` sets them (see
group_vars/README.md). Keep this namespace small; a value one role owns
belongs in that role's namespace.
"""

from __future__ import annotations

import re

from pydantic import Field

from hopthu.schema.base import SettingsModel
from hopthu.schema.types import DomainName, checked

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
