"""`python -m earthseg.cli`: the `earthseg` command."""

import sys

from earthseg.cli import main

sys.exit(main())
