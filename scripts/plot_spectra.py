"""Plot a specdiag trace: every figure of ``specdiag plot``, as a script.

    python scripts/plot_spectra.py TRACE.h5 [--out DIR] [--format png|pdf|svg] [--lr LR] [--force]
                                   [--style default|paper] [--width column|page|INCHES]

The same code as the ``specdiag plot`` command (``python scripts/plot_spectra.py --help``
lists the options). Needs numpy, h5py and matplotlib; torch is never imported.
"""

from __future__ import annotations

import sys

from specdiag.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
