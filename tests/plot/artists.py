"""What a figure drew, as numpy arrays (matplotlib's getters are loosely typed)."""

from __future__ import annotations

from typing import Any

import numpy as np


def xdata(line: Any) -> np.ndarray:
    return np.asarray(line.get_xdata(), dtype=float)


def ydata(line: Any) -> np.ndarray:
    return np.asarray(line.get_ydata(), dtype=float)


def cells(mesh: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The values of a heat map's cells (masked ones included), ``shape`` (rows, columns)."""
    return np.asarray(np.ma.getdata(mesh.get_array()), dtype=float).reshape(shape)


def blank(mesh: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Which cells of a heat map are masked (drawn blank)."""
    return np.asarray(np.ma.getmaskarray(mesh.get_array())).reshape(shape)


def y_edges(mesh: Any) -> np.ndarray:
    """The cell edges along y of a heat map's first column."""
    return np.asarray(mesh.get_coordinates(), dtype=float)[:, 0, 1]
