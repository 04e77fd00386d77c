"""Inventories the unit tests share (tests/unit/*.py import them as `layouts`)."""

#: Production's split layout in small: one MX host, one mailbox store.
SPLIT_HOSTS = """
all:
  children:
    mail_mx:
      hosts:
        mx1:
          ansible_host: 192.0.2.10
    mail_store:
      hosts:
        store1:
          ansible_host: 192.0.2.21
"""
