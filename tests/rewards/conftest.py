import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train far faster on one thread than on an oversubscribed shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
