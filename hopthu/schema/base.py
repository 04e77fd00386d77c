"""The base of the settings models, and the registry of namespaces.

One model per namespace: a role's (`common` for the `common__*` keys) or the
project's (`hopthu__*`). A model registers itself by subclassing
`SettingsModel` with a `namespace`; `hopthu.schema` imports every module of
this package, so a new role's model is one new file here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

#: namespace -> model, filled as the models' modules are imported
REGISTRY: dict[str, type[SettingsModel]] = {}


@dataclass(frozen=True)
class CrossCheck:
    """A problem found by comparing several valid values (see `SettingsModel.cross_checks`)."""

    #: The path of the bad value: a key, or a key and the path inside it.
    path: tuple[str | int, ...]
    value: Any
    message: str
    allowed: str


class Strict(BaseModel):
    """A mapping inside a setting: no unknown keys, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SettingsModel(Strict):
    """The variables of one namespace, `<namespace>__<name>`.

    Fields carry no defaults: the defaults live in the role's
    `defaults/main.yml`, documented there, and a test checks that the two list
    the same keys. Every field has a description; the role's
    `meta/argument_specs.yml` is generated from them.
    """

    #: The variables' prefix without the two underscores: `common`.
    namespace: ClassVar[str] = ""
    #: Whether the namespace is a role (roles/<namespace>/) or project-wide.
    is_role: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.namespace:
            return
        bad = [name for name in cls.model_fields if not name.startswith(f"{cls.namespace}__")]
        if bad:
            raise TypeError(f"{cls.__name__}: fields {bad} lack the prefix {cls.namespace}__")
        REGISTRY[cls.namespace] = cls

    def cross_checks(self) -> Iterator[CrossCheck]:
        """Problems that only show when valid values are compared with each other."""
        return iter(())
