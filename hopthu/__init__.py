"""hopthu: the Ministry of Justice mail system, as code (Decision 290/QD-BTP)."""

from pathlib import Path

__version__ = "0.1.0"

#: The project's root: the directory holding site.yml, deploy.py and group_vars/.
ROOT = Path(__file__).resolve().parent.parent
