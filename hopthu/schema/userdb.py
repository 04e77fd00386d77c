"""The settings of the `userdb` role: the user database (roles/userdb/defaults/main.yml)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel, Strict
from hopthu.schema.mailtypes import Bytes, MailAddress
from hopthu.schema.types import DebianPackage, DomainName, Text, UnixUser


class SeedAccount(Strict):
    """A mailbox the lab creates before the accounts registry exists (lab only).

    Every key is required (the role's argument_specs check the same).
    """

    address: MailAddress = Field(description="The mailbox's address, in one of userdb__domains.")
    password: str = Field(
        min_length=12,
        description=(
            "Its password, lab only: hashed on the host with `doveadm pw`; production never "
            "seeds accounts."
        ),
    )
    display_name: Text = Field(description="The holder's name in Vietnamese, NFC (Art. 9).")
    kind: Literal["personal", "unit"] = Field(
        description="personal (one person) or unit (Art. 4, Art. 13)."
    )
    quota: Bytes = Field(
        description="The mailbox quota in bytes; 0 means unlimited."
    )
    must_change: bool = Field(
        description="Whether the holder must change the password before using mail (Art. 14).",
    )
    delegates: list[MailAddress] = Field(
        description="Accounts that may send as this (unit) mailbox (Art. 13).",
    )


class SeedAlias(Strict):
    """An alias address the lab creates (lab only)."""

    address: MailAddress = Field(description="The alias address, in one of userdb__domains.")
    targets: list[MailAddress] = Field(
        min_length=1, description="The addresses mail to the alias goes to."
    )


class UserdbSettings(SettingsModel):
    """The user database: one SQLite file that Postfix and Dovecot both read.

    It holds the domains, the mailboxes (personal and unit), aliases,
    delegates, quotas, states and password hashes (roles/userdb/README.md
    documents the schema). Postfix reads a derived copy without any secret;
    Dovecot reads the database itself. Until the accounts registry lands, the
    lab seeds test accounts from userdb__seed_accounts.
    """

    namespace = "userdb"

    userdb__packages: list[DebianPackage] = Field(
        description="Packages the user database needs: sqlite3 for the operators' inspection."
    )
    userdb__reader_group: UnixUser = Field(
        description=(
            "The group that may read users.sqlite with its password hashes: dovecot on a "
            "store host (its auth processes read it), root where no Dovecot runs."
        )
    )
    userdb__passwords_enabled: bool = Field(
        description=(
            "Whether this host keeps password hashes (a store host, where `doveadm pw` hashes "
            "them). An MX-only host keeps the addresses only."
        )
    )
    userdb__password_scheme: Literal["ARGON2ID", "BLF-CRYPT"] = Field(
        description=(
            "The Dovecot password scheme of new hashes: ARGON2ID (memory-hard, the default) or "
            "BLF-CRYPT (bcrypt). Both are slow by design against offline guessing (Art. 11.5)."
        )
    )
    userdb__domains: list[DomainName] = Field(
        min_length=1, description="The mail domains the system is the final destination for."
    )
    userdb__registry_file: str = Field(
        pattern=r"^/.*/accounts\.yml$",
        description=(
            "The accounts registry the deploy applies: the inventory's accounts.yml "
            "(DESIGN.md §4), read on the controller. When the file exists it manages every "
            "mailbox, and one that leaves it is archived; without it only the lab's seed is "
            "applied."
        ),
    )
    userdb__seed_accounts: list[SeedAccount] = Field(
        description=(
            "Lab only, until the accounts registry: mailboxes to create, each {address, "
            "password, display_name, kind, quota, must_change, delegates}. Seeding is "
            "idempotent: an unchanged password is not hashed again."
        )
    )
    userdb__seed_aliases: list[SeedAlias] = Field(
        description="Lab only: aliases to create, each {address, targets}."
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        domains = set(self.userdb__domains)
        mailboxes = {a.address for a in self.userdb__seed_accounts}
        seen: set[str] = set()
        for index, account in enumerate(self.userdb__seed_accounts):
            domain = account.address.rpartition("@")[2]
            if domain not in domains:
                yield CrossCheck(
                    ("userdb__seed_accounts", index, "address"), account.address,
                    "is not in a domain of userdb__domains",
                    f"an address @{' or @'.join(sorted(domains))}",
                )
            if account.address in seen:
                yield CrossCheck(
                    ("userdb__seed_accounts", index, "address"), account.address,
                    "is listed twice", "each address once",
                )
            seen.add(account.address)
            for d_index, delegate in enumerate(account.delegates):
                if delegate not in mailboxes:
                    yield CrossCheck(
                        ("userdb__seed_accounts", index, "delegates", d_index), delegate,
                        "is not a seeded mailbox", "the address of a userdb__seed_accounts entry",
                    )
        for index, alias in enumerate(self.userdb__seed_aliases):
            if alias.address.rpartition("@")[2] not in domains:
                yield CrossCheck(
                    ("userdb__seed_aliases", index, "address"), alias.address,
                    "is not in a domain of userdb__domains",
                    f"an address @{' or @'.join(sorted(domains))}",
                )
            if alias.address in seen:
                yield CrossCheck(
                    ("userdb__seed_aliases", index, "address"), alias.address,
                    "is also a mailbox or another alias", "an address used once",
                )
            seen.add(alias.address)
