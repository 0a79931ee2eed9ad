import pytest
import torch

from kernels.channels_last import channels_last, channels_last_ref
from tests.kernels.conftest import DEVICE, DTYPES


@pytest.mark.parametrize("shape", [pytest.param((2, 67, 33), id="B2-D67-L33"),
                                   pytest.param((1, 5, 1), id="B1-D5-L1"),
                                   pytest.param((3, 130, 70), id="B3-D130-L70-partial-tiles"),
                                   pytest.param((1, 64, 128), id="B1-D64-L128-whole-tiles")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_copies_values_into_channel_major_memory(shape, dtype, poison):
    """Every element copied bit for bit (NaN-poisoned output: a missed tile shows), channels contiguous."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).to(dtype).to(DEVICE)  # seqlen contiguous, mamba-ssm's layout
    y = channels_last(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.stride(1) == 1 and y.transpose(1, 2).is_contiguous()
    assert torch.equal(y, x) and torch.equal(y, channels_last_ref(x))


def test_channels_last_takes_any_strides_and_empty():
    x = torch.randn(4, 9, 6, device=DEVICE)[::2, :, 1:]  # batch-strided, offset view
    assert torch.equal(channels_last(x), x)
    e = torch.empty(2, 3, 0, device=DEVICE)
    assert channels_last(e).shape == (2, 3, 0)
    with pytest.raises(AssertionError, match="must be \\(batch, dim, seqlen\\)"):
        channels_last(torch.zeros(3, 4, device=DEVICE))
