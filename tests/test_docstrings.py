"""Every example in the docstrings runs and prints what it shows.

The examples are collected from every module of the package by :mod:`doctest` and run
with ``sd`` (specdiag), ``toys``, ``torch`` and ``np`` already imported, in a fresh
empty working directory; ``...`` in an expected output stands for any text.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys

#: Modules that need an optional framework the test environment may lack.
OPTIONAL = {
    "specdiag.integrations.lightning": "lightning",
    "specdiag.integrations.ignite": "ignite",
}


def modules() -> list[str]:
    names = ["specdiag"]
    for info in pkgutil.walk_packages(sd.__path__, "specdiag."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def examples(name: str) -> list[doctest.DocTest]:
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, name) if t.examples]


@pytest.mark.parametrize("name", modules())
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    for test in examples(name):
        test.globs = {"sd": sd, "toys": toys, "torch": torch, "np": np, **test.globs}
        result = runner.run(test, clear_globs=True)
        assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} failed"


def test_every_example_runs_none_is_skipped() -> None:
    skipped = []
    for name in modules():
        if name in OPTIONAL:
            continue
        for test in examples(name):
            skipped += [
                f"{test.name}: {e.source.strip()}"
                for e in test.examples
                if e.options.get(doctest.SKIP)
            ]
    assert not skipped, "docstring examples marked +SKIP:\n" + "\n".join(skipped)
