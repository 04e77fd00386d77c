"""The portal deploy: the password portal on the mailbox store.

Where it sits. On every mail_store host, beside Dovecot and the user
database. A new or reset mailbox gets a random initial password and must
change it before mail works (Art. 11.3, 14); this is where its holder does
so: a small Flask application run by Debian's gunicorn on loopback, behind
nginx with the host's TLS certificate, reachable from the internal zone only.

What it owns. The application (/usr/local/lib/hopthu/portal/), its settings
and session key (/etc/hopthu/portal/), its unit (hopthu-portal.service) and
system user, one sudoers rule, nginx's /etc/nginx/conf.d/hopthu.conf and the
drop-in that makes systemd restart nginx (nginx.service.d/hopthu.conf);
Debian's default site is removed.

How a change is checked. The application and the sudoers rule are checked
before they are written; nginx's configuration with `nginx -t` before a
reload; after a restart the portal must answer /healthz.

roles/portal/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings
from hopthu.render import load_filters

#: roles/portal/tasks/main.yml's session key step, the same shell.
SESSION_KEY_SCRIPT = (
    "umask 027 && head -c 48 /dev/urandom | base64 > /etc/hopthu/portal/secret.key.new && "
    "chgrp hopthu-portal /etc/hopthu/portal/secret.key.new && "
    "mv /etc/hopthu/portal/secret.key.new /etc/hopthu/portal/secret.key"
)

#: The e-mail directory's files (roles/portal's "Publish the e-mail directory" loop).
DIRECTORY_FILES = ("index.html", "directory.csv", "directory.vcf", "directory.ldif")

#: The role's check handler: /healthz must answer within 20 s.
HEALTH_SCRIPT = (
    "for i in $(seq 40); do "
    "python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "
    "http://127.0.0.1:{port}/healthz 2>/dev/null && exit 0; sleep 0.5; done; "
    "echo 'the portal does not answer on 127.0.0.1:{port}' >&2; exit 1"
)


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_store host)."""
    values = host_settings()
    port = int(values["portal__app_port"])

    apt.packages(
        name="Install the portal packages",
        packages=values["portal__packages"],
        present=True,
    )
    server.user(
        name="Create the portal user",
        user="hopthu-portal",
        system=True,
        shell="/usr/sbin/nologin",
        home="/nonexistent",
        create_home=False,
        # pyinfra would otherwise make /nonexistent, owned by the user.
        ensure_home=False,
    )
    files.directory(
        name="Create the portal settings directory",
        path="/etc/hopthu/portal",
        present=True,
        user="root",
        group="hopthu-portal",
        mode="0750",
    )
    files.directory(
        name="Create the portal application directory",
        path="/usr/local/lib/hopthu/portal",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    key = host.get_fact(File, path="/etc/hopthu/portal/secret.key")
    server.shell(
        name="Create the portal session key",
        commands=[SESSION_KEY_SCRIPT],
        _if=lambda: not key,
    )
    app = put_template(
        name="Render the portal application",
        template="usr/local/lib/hopthu/portal/hopthu_portal.py.j2",
        dest="/usr/local/lib/hopthu/portal/hopthu_portal.py",
        user="root",
        group="root",
        mode="0644",
        validate='python3 -I -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" %s',
        variables=values,
    )
    conf = put_template(
        name="Render the portal settings",
        template="etc/hopthu/portal/portal.conf.j2",
        dest="/etc/hopthu/portal/portal.conf",
        user="root",
        group="hopthu-portal",
        mode="0640",
        variables=values,
    )
    put_template(
        name="Render the portal's sudoers rule",
        template="etc/sudoers.d/hopthu-portal.j2",
        dest="/etc/sudoers.d/hopthu-portal",
        user="root",
        group="root",
        mode="0440",
        validate="visudo -cf %s",
        variables=values,
    )
    unit = put_template(
        name="Render the portal unit",
        template="etc/systemd/system/hopthu-portal.service.j2",
        dest="/etc/systemd/system/hopthu-portal.service",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Self-healing (Art. 11.1, roles/portal/README.md): the portal's own unit
    # restarts gunicorn; this drop-in makes systemd restart nginx. Restart=
    # and the start limits take effect with the daemon-reload; nginx is not
    # restarted.
    files.directory(
        name="Create the nginx unit drop-in directory",
        path="/etc/systemd/system/nginx.service.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    nginx_dropin = put_template(
        name="Render the nginx unit drop-in",
        template="etc/systemd/system/nginx.service.d/hopthu.conf.j2",
        dest="/etc/systemd/system/nginx.service.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Now, not at the end: the units are enabled and started below as written.
    systemd.daemon_reload(
        name="Reload systemd units after a portal or nginx unit change",
        _if=any_changed(unit, nginx_dropin),
    )
    for path in ("/usr/local/share/hopthu/www/mail", "/usr/local/share/hopthu/www/autodiscover"):
        files.directory(
            name="Create the client setup directories",
            path=path,
            present=True,
            user="root",
            group="root",
            mode="0755",
        )
    put_template(
        name="Render the Thunderbird autoconfig",
        template="usr/local/share/hopthu/www/mail/config-v1.1.xml.j2",
        dest="/usr/local/share/hopthu/www/mail/config-v1.1.xml",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render the Outlook autodiscover",
        template="usr/local/share/hopthu/www/autodiscover/autodiscover.xml.j2",
        dest="/usr/local/share/hopthu/www/autodiscover/autodiscover.xml",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    files.directory(
        name="Create the directory's publication directory",
        path="/usr/local/share/hopthu/www/danh-ba",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    # The same filters the role's copy task calls (filter_plugins/hopthu_accounts.py).
    filters = load_filters()
    registry = values["portal__registry_file"]
    if filters["accounts_registry_present"](registry):
        for name in DIRECTORY_FILES:
            files.put(
                name="Publish the e-mail directory",
                src=io.BytesIO(filters["accounts_directory"](registry, name).encode("utf-8")),
                dest=f"/usr/local/share/hopthu/www/danh-ba/{name}",
                user="root",
                group="root",
                mode="0644",
            )
    # Debian ships it as a symbolic link to sites-available/default.
    default_site = files.link(
        name="Remove Debian's default nginx site",
        path="/etc/nginx/sites-enabled/default",
        present=False,
    )
    site = put_template(
        name="Render the nginx site",
        template="etc/nginx/conf.d/hopthu.conf.j2",
        dest="/etc/nginx/conf.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.service(
        name="Enable and start the portal",
        service="hopthu-portal.service",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="Enable and start nginx",
        service="nginx.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change ---------

    restart = any_changed(app, conf, unit)
    systemd.service(
        name="Restart the portal",
        service="hopthu-portal.service",
        running=True,
        restarted=True,
        _if=restart,
    )
    server.shell(
        name="Check that the portal answers",
        commands=[HEALTH_SCRIPT.format(port=port)],
        _if=restart,
    )
    reload = any_changed(default_site, site)
    server.shell(
        name="Check nginx configuration",
        commands=["nginx -t -q"],
        _if=reload,
    )
    systemd.service(
        name="Reload nginx",
        service="nginx.service",
        running=True,
        reloaded=True,
        _if=reload,
    )
