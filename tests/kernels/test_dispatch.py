import pytest
import torch

from kernels import dispatch
from kernels.selective_state_update import selective_state_update_ref
from tests.kernels.conftest import DEVICE


def test_cpu_defaults_to_the_cpu_fast_path(monkeypatch):
    monkeypatch.delenv(dispatch.ENV, raising=False)
    assert dispatch.path_for("cpu") == "cpu-chunked"
    monkeypatch.setenv(dispatch.ENV, "reference")
    assert dispatch.op("selective_state_update", "cpu") is selective_state_update_ref


def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv(dispatch.ENV, "triton")
    monkeypatch.setattr(dispatch, "_interpreting", lambda: True)
    assert dispatch.path_for("cpu") == "triton"
    monkeypatch.setattr(dispatch, "_interpreting", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA/ROCm GPU"):
        dispatch.path_for("cpu")


def test_interpreter_is_what_the_kernels_were_decorated_with(monkeypatch):
    """Setting TRITON_INTERPRET after `kernels` is imported changes nothing: on a GPU machine the kernels stay
    compiled, so CPU tensors must not be routed to them."""
    interpreted = dispatch._interpreting()
    monkeypatch.setenv("TRITON_INTERPRET", "0" if interpreted else "1")
    assert dispatch._interpreting() == interpreted


def test_bad_value_is_a_sentence(monkeypatch):
    monkeypatch.setenv(dispatch.ENV, "cuda-graphs")
    with pytest.raises(ValueError, match="must be one of auto"):
        dispatch.path_for("cpu")


def test_mamba_ssm_needs_gpu(monkeypatch):
    monkeypatch.setenv(dispatch.ENV, "mamba-ssm")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a GPU"):
            dispatch.path_for("cpu")


def test_dispatched_ops_agree_across_paths(monkeypatch):
    """The same call through the reference and the Triton path (interpreted on CPU, compiled on a GPU) gives
    the same answer."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # the reference's conv1d in full fp32
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6, 9, generator=g).to(DEVICE)
    w, b = torch.randn(6, 4, generator=g).to(DEVICE), torch.randn(6, generator=g).to(DEVICE)
    monkeypatch.setenv(dispatch.ENV, "reference")
    ref = dispatch.causal_conv1d(x, w, b, "silu")
    monkeypatch.setenv(dispatch.ENV, "triton")
    out = dispatch.causal_conv1d(x, w, b, "silu")
    assert torch.allclose(out, ref, atol=1e-5)
    assert dispatch.describe(DEVICE)["path"] == "triton"
