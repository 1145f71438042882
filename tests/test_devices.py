"""Device choice: swap and eval default to "auto", which is CUDA only where torch sees a GPU."""

import torch

from swapface.devices import resolve_device


def test_auto_device_is_cuda_only_when_present():
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None) == expected
