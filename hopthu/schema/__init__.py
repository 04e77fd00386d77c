"""One schema for all of hopthu's settings: a pydantic model per namespace.

Each role has a model of its `<role>__*` variables (`CommonSettings` for
`common__*`, in `hopthu/schema/common.py`); `hopthu__*` has `ProjectSettings`.
A host's model is the composition of the models of the roles applied to it
(`host_model`). `validate` checks a host's resolved variables and returns
the problems in words: the key, the path inside, the value, what is wrong and
the allowed form. To add a role's settings, add `hopthu/schema/<role>.py`
with a `SettingsModel` subclass; it registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil

from hopthu.schema.base import REGISTRY, CrossCheck, SettingsModel, Strict
from hopthu.schema.types import Form
from hopthu.schema.validate import (
    MISSING,
    Problem,
    describe,
    field_type,
    host_model,
    namespaces,
    validate,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MISSING",
    "REGISTRY",
    "CrossCheck",
    "Form",
    "Problem",
    "SettingsModel",
    "Strict",
    "describe",
    "field_type",
    "host_model",
    "namespaces",
    "validate",
]
