"""The numbers behind the figures: the broadened density, per-step tables, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specdiag.plot.data import broadened_density, by_step, rowwise


def integral(y, x):
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def gaussian(x, mean, sigma):
    return np.exp(-((x - mean) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def test_one_node_of_weight_one_is_a_normal_density():
    grid = np.linspace(-3.0, 5.0, 801)
    phi = broadened_density(np.array([[1.0]]), np.array([[1.0]]), grid, 0.25)
    np.testing.assert_allclose(phi, gaussian(grid, 1.0, 0.25), rtol=1e-12)
    assert integral(phi, grid) == pytest.approx(1.0, abs=1e-9)


def test_rows_are_averaged_and_padding_is_ignored():
    """Two start vectors: the mean of their quadratures; NaN padding and an empty row
    (an exact solve fills row 0 only) do not count."""
    nodes = np.array([[-1.0, 2.0, np.nan], [0.5, np.nan, np.nan], [np.nan] * 3])
    weights = np.array([[0.25, 0.75, np.nan], [1.0, np.nan, np.nan], [np.nan] * 3])
    grid = np.linspace(-4, 5, 901)
    sigma = 0.1
    expected = (
        0.25 * gaussian(grid, -1.0, sigma)
        + 0.75 * gaussian(grid, 2.0, sigma)
        + gaussian(grid, 0.5, sigma)
    ) / 2
    np.testing.assert_allclose(broadened_density(nodes, weights, grid, sigma), expected, rtol=1e-12)
    # row 0 only (an exact solve): R = 1, not the 3 rows of the array
    exact = np.vstack([nodes[:1], np.full((2, 3), np.nan)])
    phi = broadened_density(exact, np.vstack([weights[:1], np.full((2, 3), np.nan)]), grid, sigma)
    row0 = 0.25 * gaussian(grid, -1.0, sigma) + 0.75 * gaussian(grid, 2.0, sigma)
    np.testing.assert_allclose(phi, row0, rtol=1e-12)
    assert integral(phi, grid) == pytest.approx(1.0, abs=1e-6)


def test_a_probe_without_nodes_has_no_density():
    phi = broadened_density(np.full((2, 3), np.nan), np.full((2, 3), np.nan), np.arange(5.0), 1)
    assert np.isnan(phi).all()
    with pytest.raises(ValueError, match="sigma must be positive"):
        broadened_density(np.ones((1, 1)), np.ones((1, 1)), np.arange(3.0), 0.0)


def test_by_step_groups_batches_with_trailing_axes():
    steps = np.array([10, 0, 10, 20])
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    uniq, table = by_step(steps, values)
    assert list(uniq) == [0, 10, 20] and table.shape == (3, 2, 2)
    np.testing.assert_array_equal(rowwise(np.nanmean, table), [[3, 4], [3, 4], [7, 8]])
