"""``python -m specdiag``: the same as the ``specdiag`` command."""

import sys

from .cli import main

sys.exit(main())
