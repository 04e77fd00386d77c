"""pyinfra's view of the lab inventory (hosts.yml beside this file).

pyinfra executes this file as its inventory: it defines one list per group
of hosts.yml, each host with its connection data and its resolved,
checked settings (hopthu/pyinfra_inventory.py). Bad settings stop pyinfra
here, before any host is contacted.

    pyinfra inventories/lab/inventory.py deploy.py [--limit mail1] [--dry] [--diff]
"""

from hopthu.pyinfra_inventory import groups_for_file as _groups_for_file

globals().update(_groups_for_file(__file__))
