import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: products on tiny test models are dominated by threading
    overhead, which on a loaded 2-core machine costs over 100x. Also makes timings
    irrelevant to results."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
