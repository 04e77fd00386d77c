"""The accounts registry: validation, planning and the directory (DESIGN.md §4)."""
