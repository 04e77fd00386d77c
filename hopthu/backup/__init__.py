"""Backups on the controller's side (Art. 11.7; roles/backup/README.md).

- ``passphrase``: the repositories' passphrase, read (and, in the lab, made)
  on the controller for both deploy engines;
- ``command``: ``hopthu backup now|list|drill|restore``, which run the hosts'
  own ``/usr/local/sbin/hopthu-backup`` over SSH;
- ``freshness``: whether a store's last backup is good and recent, the one
  rule of the infra suite and ``hopthu status``.
"""
