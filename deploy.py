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

from pyinfra import host

from hopthu.deploys import (
    backup,
    clamav,
    common,
    dovecot,
    lab_peer,
    node_exporter,
    pki,
    portal,
    postfix,
    postfix_exporter,
    prometheus,
    redis,
    rspamd,
    userdb,
)

# site.yml play 2: every host.
common.apply()

# site.yml's "Give every monitored host its metrics exporter" play, before
# the mail roles (the rspamd deploy writes into its textfile directory).
if any(group in host.groups for group in ("mail_mx", "mail_store", "mail_backup",
                                            "mail_monitor")):
    node_exporter.apply()

# site.yml's mail core plays, in their order, chosen by group membership (a
# Python `if` on the inventory, never on host state); a host in both groups
# gets each role once.
if "mail_mx" in host.groups or "mail_store" in host.groups:
    pki.apply()
    userdb.apply()
# site.yml's "Build the mail filters" play (mail_mx), before Postfix: Redis
# and the virus scanner before Rspamd, which uses both.
if "mail_mx" in host.groups:
    redis.apply()
    clamav.apply()
    rspamd.apply()
if "mail_mx" in host.groups:
    postfix.apply()
# site.yml's "Publish the MX hosts' queue metrics" play.
if "mail_mx" in host.groups:
    postfix_exporter.apply()
if "mail_store" in host.groups:
    dovecot.apply()
# site.yml's "Build the password portal" play.
if "mail_store" in host.groups:
    portal.apply()

# site.yml's "Build the monitor host" play: the CA in the trust store (no
# certificate of its own), then Prometheus and the blackbox exporter.
if "mail_monitor" in host.groups:
    pki.apply()
    prometheus.apply()

# site.yml's backup play: the stores and the backup host together, so that
# each step runs on both sides before the next (hopthu/deploys/backup.py).
if "mail_store" in host.groups or "mail_backup" in host.groups:
    backup.apply()

# site.yml's lab_peer play, lab only: "the Internet", its DNS and a foreign
# MTA, trusting the lab CA, with a certificate for its own name (DANE).
if "lab_peer" in host.groups:
    pki.apply()
    lab_peer.apply()
