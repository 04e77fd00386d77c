"""The pyinfra entry point: the same roles as site.yml, in the same order.

Run it with the pyinfra inventory of an environment, which loads and checks
every host's settings before any host is contacted:

    pyinfra inventories/lab/inventory.py deploy.py                 # ask, then apply
    pyinfra inventories/lab/inventory.py deploy.py --limit mail1 -y
    pyinfra inventories/lab/inventory.py deploy.py --dry --diff    # change nothing

or through `hopthu deploy --engine pyinfra --inventory lab`. Each role of
site.yml is a module of hopthu/deploys/ with the same steps under the same
names (tests/unit/test_engine_shape.py).
"""

from hopthu.deploys import common

# site.yml play 2: every host.
common.apply()

# Later issues add, in site.yml's order, one block per host group, chosen by
# group membership (a Python `if` on the inventory, never on host state).
