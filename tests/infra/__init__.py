"""The infra suite: read-only checks of deployed hosts, for any inventory (DESIGN.md §6)."""
