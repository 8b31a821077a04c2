"""The ``specdiag`` command line (also ``python -m specdiag``).

Commands
--------
``specdiag demo --out DIR``
    Train the built-in mixture-of-Gaussians GAN by simultaneous gradient descent and by
    consensus optimisation, monitor both, write traces, figures and a summary.
``specdiag plot TRACE.h5 [--out DIR] [--format png|pdf|svg]``
    Every figure of a trace (:mod:`specdiag.plot`).
``specdiag compare A.h5 B.h5 ... [--out DIR]``
    Several runs overlaid.
``specdiag summary TRACE.h5 [--json]``
    A table of the probes and the warnings (:mod:`specdiag.summary`).
``specdiag probe SNAPSHOTS --game MODULE:FUNCTION --out TRACE.h5 [--workers N] [--load ...]``
    Probe the snapshots of a deferred monitor (or a run's own checkpoints) afterwards
    and write their trace (:func:`specdiag.probe_snapshots`).
``specdiag path-angle START END --game MODULE:FUNCTION [--load ...] [--out DIR]``
    Berard et al.'s path-angle between two snapshots or checkpoints
    (:func:`specdiag.path_angle`): a figure and a CSV.
``specdiag watch TRACE.h5 [--swmr]``
    The newest probes of a trace while training writes it, until Ctrl-C.
``specdiag info``
    Versions of specdiag and its dependencies, torch's thread count and whether CUDA
    is available: paste it into a bug report.

``plot``, ``compare``, ``summary`` and ``watch`` read traces without importing torch.
``plot`` and ``compare`` take ``--style paper``, ``--width column|page|INCHES`` and
``--dpi`` for figures sized for print. Every
error (a missing or foreign file, an empty trace, an unknown operator, an output that
exists without ``--force``) is reported as one line on standard error, with exit
status 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any, NoReturn, Optional, Sequence

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
    _add_demo(commands)
    _add_plot(commands)
    _add_compare(commands)
    _add_summary(commands)
    _add_probe(commands)
    _add_path_angle(commands)
    _add_watch(commands)
    info = commands.add_parser(
        "info",
        help="print versions, torch threads and CUDA availability (for bug reports)",
        description="Print the versions of specdiag, Python, torch, numpy and scipy, "
        "the number of torch threads and whether CUDA is available.",
    )
    info.set_defaults(handler=_info)
    return parser


#: The demo's options: DemoConfig field, its argument's type and help.
DEMO_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    ("steps", int, "training steps per run"),
    ("every", int, "a probe is due every N steps"),
    (
        "budget",
        None,
        "share of the training time probes may take; due probes that do not fit "
        "wait ('none': every due probe runs)",
    ),
    ("k", int, "eigenvalues per operator"),
    ("seed", int, "random seed of both runs"),
    ("lr", float, "learning rate"),
    ("optimizer", ("rmsprop", "adam", "sgd"), "optimiser of both players"),
    ("loss", ("nonsaturating", "minimax", "wgan"), "GAN loss"),
    ("consensus", float, "γ of consensus optimisation"),
    ("batch_size", int, "batch size"),
)


def _add_demo(commands: Any) -> None:
    from .demo import DemoConfig

    defaults = DemoConfig()
    demo = commands.add_parser(
        "demo",
        help="train the built-in GAN two ways and show its spectra (a few minutes)",
        description="Train the mixture-of-Gaussians GAN of 'The Numerics of GANs' twice from "
        "the same seed, by simultaneous gradient descent and by consensus optimisation, with "
        "a SpectrumMonitor on each; write both traces, their figures, a comparison and a "
        "summary into DIR.",
    )
    demo.add_argument(
        "--out",
        default="specdiag-demo",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    for name, kind, text in DEMO_OPTIONS:
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if isinstance(kind, tuple):
            demo.add_argument(
                flag, choices=kind, default=default, help=f"{text} (default: %(default)s)"
            )
        else:
            demo.add_argument(
                flag,
                type=_budget if name == "budget" else kind,
                default=default,
                metavar="FRACTION|none" if name == "budget" else None,
                help=f"{text} (default: %(default)s)",
            )
    _add_output_options(demo)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _add_swmr(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--swmr",
        action="store_true",
        help="read traces written in SWMR mode (by a monitor with swmr=True)",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("png", "pdf", "svg"),
        default="png",
        help="figure format (default: %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _add_style_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--style",
        choices=("default", "paper"),
        default=None,
        help="figure style: 'paper' for a colour-blind-safe palette and fonts sized for a "
        "printed column (default: the screen style)",
    )
    parser.add_argument(
        "--width",
        default=None,
        metavar="column|page|INCHES",
        help="figure width: one column (3.5 in), a page (7 in) or inches",
    )
    parser.add_argument("--dpi", type=float, default=None, help="resolution of raster figures")


def _budget(value: str) -> Optional[float]:
    """``--budget``: a fraction in (0, 1], or ``none``."""
    if value.lower() == "none":
        return None
    try:
        budget = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction or 'none': {value!r}") from None
    if not 0 < budget <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return budget


def _width(value: Optional[str]) -> Any:
    """``--width`` as plot_trace takes it: ``"column"``, ``"page"`` or inches."""
    if value is None or value in ("column", "page"):
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"--width must be 'column', 'page' or a number of inches, got {value!r}"
        ) from None


def _add_plot(commands: Any) -> None:
    plot = commands.add_parser(
        "plot",
        help="draw every figure of a trace",
        description="Draw the eigenvalues of a trace in the complex plane coloured by step, "
        "their real and imaginary parts over training (and as an animated GIF), the summary "
        "scalars, and the spread across probe batches. Works on a trace still being written.",
    )
    plot.add_argument("trace", metavar="TRACE.h5")
    plot.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: the trace's name without .h5, plus _plots)",
    )
    plot.add_argument(
        "--operator",
        default="jacobian",
        help="operator whose eigenvalues to draw (default: %(default)s)",
    )
    plot.add_argument(
        "--lr",
        type=float,
        help="draw the stability region of gradient descent at this step size "
        "(default: the lr stored in the trace's metadata, if any)",
    )
    plot.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    _add_swmr(plot)
    _add_output_options(plot)
    _add_style_options(plot)
    plot.set_defaults(handler=_plot)


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="overlay several runs",
        description="Overlay the spectra and scalars of several traces, e.g. simultaneous "
        "gradient descent against consensus optimisation.",
    )
    compare.add_argument("traces", nargs="+", metavar="TRACE.h5")
    compare.add_argument(
        "--out", default="compare", metavar="DIR", help="output directory (default: %(default)s)"
    )
    compare.add_argument(
        "--labels", nargs="+", metavar="LABEL", help="one label per trace (default: the file names)"
    )
    compare.add_argument(
        "--operator",
        default="jacobian",
        help="operator whose eigenvalues to draw (default: %(default)s)",
    )
    _add_swmr(compare)
    _add_output_options(compare)
    _add_style_options(compare)
    compare.set_defaults(handler=_compare)


def _add_summary(commands: Any) -> None:
    summary = commands.add_parser(
        "summary",
        help="a table of a trace's probes, with warnings",
        description="Print one row per probe: step, status, converged eigenvalues and "
        "products per operator, the Jacobian's scalars and the Hessians' extremes; then "
        "warnings (failed or unconverged probes, k reaching into the bulk).",
    )
    summary.add_argument("trace", metavar="TRACE.h5")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_swmr(summary)
    summary.set_defaults(handler=_summary)


def _add_probe(commands: Any) -> None:
    probe = commands.add_parser(
        "probe",
        help="probe the snapshots of a deferred monitor (or checkpoints) and write a trace",
        description="Probe the snapshots a deferred monitor wrote (SpectrumMonitor(..., "
        "defer=True)), in step order with warm starts as in the training loop, and write "
        "their trace; with --load, probe a run's own checkpoints. MODULE is a dotted module "
        "importable from the current directory or a path to a .py file.",
    )
    probe.add_argument(
        "snapshots",
        nargs="+",
        metavar="SNAPSHOTS",
        help="a snapshot directory; with --load: checkpoint files, a directory or a glob",
    )
    probe.add_argument(
        "--game",
        required=True,
        metavar="MODULE:FUNCTION",
        help="function that builds the game: returns a specdiag.Game or (Game, batch)",
    )
    probe.add_argument("--out", required=True, metavar="TRACE.h5", help="the trace to write")
    probe.add_argument(
        "--workers", type=int, default=1, help="processes probing in parallel (default: 1)"
    )
    probe.add_argument(
        "--load",
        metavar="MODULE:FUNCTION",
        help="function(path) -> (state, step) that reads one of your checkpoints",
    )
    probe.add_argument("--k", type=int, help="eigenvalues per operator (default: specdiag.probe's)")
    probe.add_argument(
        "--operators",
        nargs="+",
        metavar="OPERATOR",
        help="'jacobian' and/or player names (their Hessians); default all",
    )
    probe.add_argument("--tol", type=float, help="solver tolerance (default: specdiag's)")
    probe.add_argument("--seed", type=int, help="probe seed (default: the snapshots' own)")
    probe.add_argument(
        "--warm-start",
        action="store_true",
        help="start each solve from the previous probe's Ritz subspace instead of cold",
    )
    probe.add_argument("--force", action="store_true", help="overwrite an existing trace")
    probe.add_argument("--no-progress", action="store_true", help="no progress bar")
    probe.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    from .linalg.options import DEFAULT_TOL
    from .monitor.offline import probe_snapshots
    from .probing.options import DEFAULT_K

    snapshots = args.snapshots[0] if len(args.snapshots) == 1 else args.snapshots
    if args.load is None and len(args.snapshots) > 1:
        raise ValueError("give one snapshot directory (several files need --load)")
    path = probe_snapshots(
        args.game,
        snapshots,
        args.out,
        k=DEFAULT_K if args.k is None else args.k,
        operators=args.operators,
        tol=DEFAULT_TOL if args.tol is None else args.tol,
        seed=args.seed,
        warm_start=args.warm_start,
        workers=args.workers,
        load=args.load,
        overwrite=args.force,
        progress=not args.no_progress,
    )
    print(path)
    return 0


def _open(path: str, swmr: bool = False) -> Any:
    from .errors import TraceError
    from .trace import open_trace

    trace = open_trace(path, swmr=swmr)
    if len(trace) == 0:
        raise TraceError(f"{path}: the trace has no probes yet")
    return trace


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    config = DemoConfig(**{name: getattr(args, name) for name, _, _ in DEMO_OPTIONS})
    run_demo(args.out, config, force=args.force, progress=not args.no_progress, fmt=args.format)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .plot import plot_trace

    trace = _open(args.trace, args.swmr)
    out = args.out or str(Path(args.trace).with_suffix("")) + "_plots"
    written = plot_trace(
        trace,
        out,
        operator=args.operator,
        fmt=args.format,
        force=args.force,
        lr=args.lr,
        gif=not args.no_gif,
        style=args.style,
        width=_width(args.width),
        dpi=args.dpi,
    )
    for path in written:
        print(path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .plot import compare_traces

    if args.labels is not None and len(args.labels) != len(args.traces):
        raise ValueError(
            f"--labels needs one label per trace: {len(args.traces)} traces, "
            f"{len(args.labels)} labels"
        )
    traces = [_open(path, args.swmr) for path in args.traces]
    written = compare_traces(
        traces,
        args.out,
        labels=args.labels,
        operator=args.operator,
        fmt=args.format,
        force=args.force,
        style=args.style,
        width=_width(args.width),
        dpi=args.dpi,
    )
    for path in written:
        print(path)
    return 0


def _add_path_angle(commands: Any) -> None:
    sub = commands.add_parser(
        "path-angle",
        help="the path-angle between two snapshots or checkpoints",
        description="Berard et al.'s path-angle: the cosine between the game's vector field "
        "and the line from START to END, and the field's norm, along that line. Writes "
        "path_angle.png (or the --format) and path_angle.csv into --out.",
    )
    sub.add_argument("start", metavar="START", help="a snapshot (or, with --load, a checkpoint)")
    sub.add_argument("end", metavar="END")
    sub.add_argument(
        "--game",
        required=True,
        metavar="MODULE:FUNCTION",
        help="a function returning the Game (or (Game, batch))",
    )
    sub.add_argument(
        "--load",
        metavar="MODULE:FUNCTION",
        help="read checkpoints: function(path) -> (state, step)",
    )
    sub.add_argument(
        "--points",
        type=int,
        default=100,
        help="points on the line over α in [-0.1, 1.1] (default: %(default)s)",
    )
    sub.add_argument(
        "--seed", type=int, help="seed of the closure's noise (default: the snapshot's)"
    )
    sub.add_argument(
        "--out", default="path-angle", metavar="DIR", help="output directory (default: %(default)s)"
    )
    _add_output_options(sub)
    _add_style_options(sub)
    sub.set_defaults(handler=_path_angle)


def _path_angle(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from .monitor.offline import path_angle_between
    from .plot import path_angle_figure

    if args.points < 2:
        raise ValueError(f"--points must be at least 2, got {args.points}")
    out = Path(args.out)
    figure_path, table_path = out / f"path_angle.{args.format}", out / "path_angle.csv"
    for path in (figure_path, table_path):
        if path.exists() and not args.force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    result = path_angle_between(
        args.game,
        args.start,
        args.end,
        load=args.load,
        alphas=np.linspace(-0.1, 1.1, args.points),
        seed=args.seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    fig = path_angle_figure(result, style=args.style, width=_width(args.width))
    fig.savefig(figure_path, format=args.format, dpi=args.dpi)
    columns = {"alpha": result.alpha, "cosine": result.cosine, "norm2": result.norm2}
    for player, (cosine, norm2) in result.players.items():
        columns[f"{player}_cosine"], columns[f"{player}_norm2"] = cosine, norm2
    np.savetxt(
        table_path,
        np.column_stack(list(columns.values())),
        delimiter=",",
        header=",".join(columns),
        comments="",
    )
    print(figure_path)
    print(table_path)
    return 0


def _summary(args: argparse.Namespace) -> int:
    import json

    from .summary import format_summary, summary_dict

    trace = _open(args.trace, args.swmr)
    if args.json:
        print(json.dumps(summary_dict(trace), indent=1, allow_nan=False, default=str))
    else:
        print(format_summary(trace))
    return 0


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
        rows.append(
            (
                "cuda devices",
                ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())),
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _add_watch(commands: Any) -> None:
    watch = commands.add_parser(
        "watch",
        help="follow a trace while training writes it (Ctrl-C to stop)",
        description="Print the newest probes of a trace as the table of 'specdiag summary' "
        "shows them (step, status, converged eigenvalues and products per operator, the "
        "Jacobian's scalars, the Hessians' extremes) and print it again whenever training "
        "has written new probes, checking every --interval seconds, until interrupted "
        "(Ctrl-C, exit status 0). A trace that does not exist yet is waited for.",
    )
    watch.add_argument("trace", metavar="TRACE.h5")
    watch.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between two looks at the trace (default: %(default)s)",
    )
    watch.add_argument(
        "--swmr",
        action="store_true",
        help="follow a trace written in SWMR mode (monitor with swmr=True): the file stays "
        "open, and is refreshed at each look, while its writer has it open",
    )
    watch.add_argument(
        "--rows",
        type=int,
        default=10,
        metavar="N",
        help="newest probes shown (default: %(default)s)",
    )
    watch.set_defaults(handler=_watch)


def _watch(args: argparse.Namespace) -> int:
    """``specdiag watch``: show the newest probes whenever they change, until Ctrl-C."""
    import math
    import time

    if not (math.isfinite(args.interval) and args.interval > 0):
        raise ValueError(f"--interval must be a positive number of seconds, got {args.interval}")
    if args.rows < 1:
        raise ValueError(f"--rows must be at least 1, got {args.rows}")
    follower = _TraceFollower(args.trace, swmr=args.swmr)
    screen = sys.stdout.isatty()  # a terminal: redraw in place; a pipe or file: append
    shown = None
    try:
        while True:
            view = follower.view(args.rows)
            if view != shown:
                stamp = time.strftime("%H:%M:%S")
                footer = f"[{stamp}] checking every {args.interval:g} s; Ctrl-C to stop"
                print(("\x1b[H\x1b[2J" if screen else "") + f"{view}\n{footer}", flush=True)
                if not screen:
                    print(flush=True)
                shown = view
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        follower.close()


class _TraceFollower:
    """Reads a trace again and again as its writer appends to it.

    Default mode opens, reads and closes the file at every look. ``swmr=True`` keeps
    it open in SWMR mode and refreshes it, but only while a writer has it open in SWMR
    mode: an SWMR reader that holds a file no SWMR writer has open would stop the next
    writer from opening it (a resumed run), so the file is then read like a plain one.
    """

    def __init__(self, path: str, *, swmr: bool) -> None:
        self.path, self.swmr = path, swmr
        self._live: Any = None

    def view(self, rows: int) -> str:
        """What ``specdiag watch`` shows now."""
        from .errors import TraceError

        if self._live is None and not os.path.exists(self.path):
            return f"waiting for {self.path} to appear (a monitor creates it at its start)"
        flags = _superblock_flags(self.path)
        if self._live is None and flags & _OPEN_FOR_WRITE and not flags & _SWMR_WRITE:
            return self._busy()
        try:
            trace = self._read(bool(flags & _SWMR_WRITE))
        except TraceError:
            if self._live is None and _superblock_flags(self.path) == _OPEN_FOR_WRITE:
                return self._busy()  # a writer opened it since the flags were read
            raise
        return _watch_view(trace, rows)

    def _busy(self) -> str:
        return (
            f"{self.path}: open for writing, not yet in SWMR mode (a resumed run starts it "
            "at its first probe); waiting. If its writer was killed, clear the mark with "
            f"`h5clear -s {self.path}`"
        )

    def _read(self, swmr_writing: bool) -> Any:
        from .errors import TraceError
        from .trace import open_trace

        if self._live is not None:
            self._live.refresh()
            trace = self._live
            if not swmr_writing:  # its writer closed the file: let the next one open it
                self.close()
            return trace
        if not swmr_writing:
            return open_trace(self.path)  # read and closed
        if not self.swmr:
            raise TraceError(
                f"{self.path}: written live in SWMR mode (monitor with swmr=True): "
                f"follow it with 'specdiag watch --swmr {self.path}'"
            )
        self._live = open_trace(self.path, swmr=True)
        return self._live

    def close(self) -> None:
        """Close the file if it is kept open."""
        if self._live is not None:
            self._live.close()
            self._live = None


#: Bits of the file consistency flags of an HDF5 superblock of version 2 or 3.
_OPEN_FOR_WRITE, _SWMR_WRITE = 1, 4


def _superblock_flags(path: str) -> int:
    """The file consistency flags of an HDF5 file's superblock; 0 when it has none.

    Versions 2 and 3 of the superblock start the file with the signature, the version,
    two sizes and then these flags: bit 0 is set while a writer has the file open (or
    was killed), bit 2 while it is open in SWMR mode. Read as bytes, without HDF5, so
    it neither waits for nor takes a lock. Files of the oldest format (version 0, a
    default-mode trace) have no such flags: their writers lock them instead.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return 0
    if len(head) < 12 or head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] < 2:
        return 0
    return head[11]


def _watch_view(trace: Any, rows: int) -> str:
    """What ``specdiag summary`` prints, cut to the ``rows`` newest probes.

    The title (file, probes, operators, convention), the table's heading and its last
    ``rows`` rows, the notes below the table (what probing cost, the number of warnings)
    and the first three warnings.
    """
    from .trace.summary import format_summary

    n = len(trace)
    if n == 0:
        return f"{trace.path}: no probes yet; waiting for the first"
    lines = format_summary(trace).splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:1] == ["step"])
    table, rest = lines[head + 1 : head + 1 + n], lines[head + 1 + n :]
    shown = [lines[0], lines[head], *table[-rows:]]
    if n > rows:
        shown.append(f"({n - rows} earlier probe(s) not shown; 'specdiag summary' lists all)")
    shown += [line for line in rest if line.strip() and not line.startswith(" ")]
    warnings = [line for line in rest if line.startswith(" ")]
    shown += warnings[:3]
    if len(warnings) > 3:
        shown.append(f"  ... and {len(warnings) - 3} more ('specdiag summary' lists them)")
    return "\n".join(shown)


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
    except BrokenPipeError:  # the reader went away (`specdiag summary t.h5 | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 1
    except (SpecdiagError, OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
