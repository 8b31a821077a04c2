"""The ``specdiag`` command line (also ``python -m specdiag``).

Commands
--------
``specdiag info``
    Versions of specdiag and its dependencies, torch's thread count and whether CUDA
    is available: paste it into a bug report.

Every error is reported as one line on standard error, with exit status 2.
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import NoReturn, Sequence

from ._version import __version__
from .errors import SpecdiagError

__all__ = ["main", "build_parser"]

PROG = "specdiag"
EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``specdiag`` command, with its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Spectral diagnostics for GANs and other differentiable games: "
        "eigenvalues of the game Jacobian, computed matrix-free.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="print versions, torch threads and CUDA availability (for bug reports)",
        description="Print the versions of specdiag, Python, torch, numpy and scipy, "
        "the number of torch threads and whether CUDA is available.",
    )
    info.set_defaults(handler=_info)
    return parser


def _info(args: argparse.Namespace) -> int:
    import numpy
    import scipy
    import torch

    cuda = torch.cuda.is_available()
    rows = [
        ("specdiag", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("platform", platform.platform()),
        ("torch", torch.__version__),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("torch threads", str(torch.get_num_threads())),
        ("cuda available", "yes" if cuda else "no"),
    ]
    if cuda:
        rows.append(("cuda devices", ", ".join(
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        )))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args))
    except (SpecdiagError, OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
