"""hopthu's settings: one model, loaded with Ansible's precedence, validated by one schema.

    from hopthu.settings import load_host, load_inventory, SettingsError

    settings = load_host("lab", "mail1")        # or a directory, or a hosts.yml
    settings.vars["common__apt_proxy"]          # resolved, plain Python values
    settings.origins["common__apt_proxy"]       # the file and layer that set it
    settings.template_vars()                    # what a template renderer needs

Both engines read the same files: Ansible through its own VariableManager,
pyinfra through this package, and a test proves they agree for every host of
every inventory. A problem stops the run before any host is touched: a
`SettingsError` lists every problem with the file, the key, the value and the
allowed form.
"""

from hopthu.settings.errors import SettingsError, SettingsIssue
from hopthu.settings.loader import (
    CONTEXT_NAMES,
    Origin,
    Settings,
    inventory_path,
    load_host,
    load_inventory,
)

__all__ = [
    "CONTEXT_NAMES",
    "Origin",
    "Settings",
    "SettingsError",
    "SettingsIssue",
    "inventory_path",
    "load_host",
    "load_inventory",
]
