"""`python -m hopthu` is the `hopthu` command (site.yml's preflight uses it)."""

import sys

from hopthu.cli import main

sys.exit(main())
