"""TensorBoard, and any logger with TensorBoard's methods: ``specdiag.integrations.tensorboard``.

The logger lives in :mod:`specdiag.monitor.tensorboard` (the monitor uses it for its
``summary_writer``); this module keeps the adapters' import path.
"""

from ..monitor.tensorboard import (
    FIGURE_OPERATOR,
    REAL_KINDS,
    TensorBoardLogger,
    eigenvalue_figure,
    eigenvalue_image,
)

__all__ = [
    "TensorBoardLogger",
    "eigenvalue_figure",
    "eigenvalue_image",
    "REAL_KINDS",
    "FIGURE_OPERATOR",
]
