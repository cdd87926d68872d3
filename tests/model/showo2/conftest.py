"""One intra-op thread for the tiny Show-o2 models: tiny kernels run faster without thread hand-offs."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
