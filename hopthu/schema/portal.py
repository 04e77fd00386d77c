"""The settings of the `portal` role: the password portal (roles/portal/defaults/main.yml)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import MailAddress
from hopthu.schema.types import DebianPackage, DomainName, Port


class PortalSettings(SettingsModel):
    """The password portal on the mailbox store (Art. 11.3, 14).

    A Flask application under Debian's gunicorn on loopback, behind nginx
    with the host's TLS certificate, internal zone only. A new or reset
    mailbox's holder replaces the initial password there; mail works at once.
    """

    namespace = "portal"

    portal__packages: list[DebianPackage] = Field(
        description="nginx, python3-flask, gunicorn and sudo: Debian's own packages only."
    )
    portal__https_port: Port = Field(
        description="The HTTPS port nginx serves the portal on (internal zone only)."
    )
    portal__app_port: Port = Field(
        description="The loopback port of the application (gunicorn); nginx's upstream."
    )
    portal__min_length: int = Field(
        ge=12, le=64,
        description=(
            "The shortest new password accepted, in characters (12 to 64: the user "
            "database tool refuses anything under 12 as well)."
        ),
    )
    portal__attempts: int = Field(
        ge=1, le=100,
        description="Password-form attempts allowed per client and per address in the window.",
    )
    portal__window_seconds: int = Field(
        ge=10, le=86400, description="The rate limit's window, in seconds."
    )
    portal__support_address: MailAddress = Field(
        description="The support desk's address users are sent to (Art. 14: support@)."
    )
    portal__imap_host: DomainName = Field(
        description="The IMAP host name shown on the success page."
    )

    portal__smtp_host: DomainName = Field(
        description="The submission host (465, 587) the client setup files announce."
    )
    portal__imaps_port: Port = Field(
        description="The IMAPS port the client setup files announce: dovecot__imaps_port."
    )
    portal__pop3s_port: Port = Field(
        description="The POP3S port the client setup files announce: dovecot__pop3s_port."
    )

    portal__registry_file: str = Field(
        pattern=r"^/.*/accounts\.yml$",
        description=(
            "The accounts registry the e-mail directory is built from (the inventory's "
            "accounts.yml; no directory is published without it)."
        ),
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        for mine, theirs in (("portal__imaps_port", "dovecot__imaps_port"),
                             ("portal__pop3s_port", "dovecot__pop3s_port")):
            real = getattr(self, theirs, None)
            if real is not None and getattr(self, mine) != real:
                yield CrossCheck(
                    (mine,), getattr(self, mine),
                    f"differs from {theirs} ({real}): mail clients would be set up with a "
                    f"port Dovecot does not serve", f"the same port as {theirs}",
                )
        if self.portal__app_port == self.portal__https_port:
            yield CrossCheck(
                ("portal__app_port",), self.portal__app_port,
                "is the HTTPS port as well", "a different loopback port, e.g. 8087",
            )
