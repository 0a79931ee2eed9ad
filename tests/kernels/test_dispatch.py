import pytest
import torch

from kernels import dispatch
from kernels.selective_state_update import selective_state_update_ref


def test_cpu_defaults_to_reference(monkeypatch):
    monkeypatch.delenv(dispatch.ENV, raising=False)
    assert dispatch.path_for("cpu") == "reference"
    assert dispatch.op("selective_state_update", "cpu") is selective_state_update_ref


def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv(dispatch.ENV, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dispatch.path_for("cpu") == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs a CUDA/ROCm GPU"):
        dispatch.path_for("cpu")


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
    """The same call through the reference and the (interpreted) Triton path gives the same answer."""
    x = torch.randn(1, 6, 9)
    w, b = torch.randn(6, 4), torch.randn(6)
    monkeypatch.setenv(dispatch.ENV, "reference")
    ref = dispatch.causal_conv1d(x, w, b, "silu")
    monkeypatch.setenv(dispatch.ENV, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    out = dispatch.causal_conv1d(x, w, b, "silu")
    assert torch.allclose(out, ref, atol=1e-5)
    assert dispatch.describe("cpu")["path"] == "triton"
