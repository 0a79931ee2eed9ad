"""backend.generation.ssm_fast: tiny HF Mamba / Mamba-2 models give the same logits with our path enabled, and
prefill-then-decode equals a full forward (CPU: PyTorch references; a subprocess runs the same check on
our Triton kernels under the Triton interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]


def tiny_model(family: str, seed: int = 0):
    from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    if family == "mamba":
        cfg = MambaConfig(vocab_size=64, hidden_size=16, state_size=8, intermediate_size=32, num_hidden_layers=2,
                          time_step_rank=4, conv_kernel=4)
        model = MambaForCausalLM(cfg)
    else:
        cfg = Mamba2Config(vocab_size=64, hidden_size=32, num_heads=4, head_dim=16, expand=2, n_groups=2,
                           state_size=16, num_hidden_layers=2, chunk_size=8, conv_kernel=4)
        model = Mamba2ForCausalLM(cfg)
    with torch.no_grad():  # non-trivial A, D, dt so that a wrong recurrence cannot pass
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "D", "dt_bias")) or "dt_proj.bias" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


FAMILIES = [pytest.param("mamba", id="mamba"), pytest.param("mamba2", id="mamba2")]


def ids_for(seed=1, length=13):
    return torch.randint(0, 64, (2, length), generator=torch.Generator().manual_seed(seed))


def check_prefill_then_decode(model, family, full_logits, ids, cut=8):
    from backend.generation.ssm_stepper import SSMGraphStepper
    from backend.generation.steppers import EagerStepper

    for stepper in (EagerStepper(model, family), SSMGraphStepper(model, family, use_cuda_graph=False)):
        logits = [stepper.prefill(ids[:, :cut])]
        logits += [stepper.step(ids[:, t]) for t in range(cut, ids.shape[1])]
        got = torch.stack(logits, dim=1)
        want = full_logits[:, cut - 1:]
        assert torch.allclose(got, want, atol=2e-4, rtol=1e-4), (type(stepper).__name__, (got - want).abs().max())
        assert stepper.cache_bytes() > 0


PATHS = [pytest.param("", "cpu-chunked", id="auto=cpu-chunked"), pytest.param("reference", "reference", id="reference")]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("env", "path"), PATHS)
def test_enable_then_prefill_decode_equals_hf_full_forward(family, env, path, monkeypatch):
    from backend.generation import ssm_fast

    monkeypatch.setenv("SSM_ARENA_KERNELS", env)
    model = tiny_model(family)
    ids = ids_for()
    with torch.no_grad():
        hf_full = model(ids).logits  # Hugging Face's own path
    assert ssm_fast.enable(model) == path and model.arena_path == path
    assert ssm_fast.is_enabled(model)
    with torch.no_grad():
        ours_full = model(ids).logits
    assert torch.allclose(ours_full, hf_full, atol=2e-4, rtol=1e-4), (ours_full - hf_full).abs().max()
    check_prefill_then_decode(model, family, hf_full, ids)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_generate_unchanged(family):
    from backend.generation import ssm_fast

    model = tiny_model(family, seed=2)
    ids = ids_for(seed=3, length=6)
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want = model.generate(ids, **kw)
        ssm_fast.enable(model)
        got = model.generate(ids, **kw)
    assert torch.equal(got, want)


def test_enable_is_idempotent_and_disable_restores():
    from backend.generation import ssm_fast

    model = tiny_model("mamba")
    mixer = model.backbone.layers[0].mixer
    ssm_fast.enable(model)
    forward = mixer.forward
    ssm_fast.enable(model)
    assert mixer.forward is forward
    ssm_fast.disable(model)
    assert not ssm_fast.is_enabled(model) and not hasattr(model, "arena_path")
    assert "forward" not in mixer.__dict__


def test_enable_rejects_a_transformer():
    from transformers import GPT2Config, GPT2LMHeadModel

    from backend.generation import ssm_fast

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32))
    with pytest.raises(ValueError, match="only Mamba and Mamba-2"):
        ssm_fast.enable(model)


def test_stepper_factory_takes_cpu_only_on_the_fast_path(monkeypatch):
    """On CPU the stepper follows the path the loader chose (`ssm_fast.enable` sets `model.arena_path`)."""
    from backend.generation import ssm_fast
    from backend.generation.ssm_stepper import SSMGraphStepper, factory

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model("mamba")
    assert ssm_fast.enable(model) == "cpu-chunked"
    stepper = factory(model, "mamba", "cpu")
    assert isinstance(stepper, SSMGraphStepper) and stepper.path == "cpu-chunked" and not stepper.use_graph
    ssm_fast.disable(model)  # Hugging Face's own path (the loader's fallback after a failed warm-up)
    assert factory(model, "mamba", "cpu") is None
    monkeypatch.setenv("SSM_ARENA_KERNELS", "reference")
    model = tiny_model("mamba")
    assert ssm_fast.enable(model) == "reference" and factory(model, "mamba", "cpu") is None
    assert factory(object(), "transformer", "cuda") is None


def test_triton_kernels_in_the_interpreter_match_hf():
    """Same check through our Triton kernels (forced path, TRITON_INTERPRET=1), in a fresh process so the
    kernels are decorated for the interpreter whatever this session imported before."""
    script = textwrap.dedent("""
        import torch
        import tests.kernels.conftest  # noqa: F401  (vectorised interpreter scan: same results, faster)
        from tests.backend.generation.test_ssm_fast import tiny_model, ids_for, check_prefill_then_decode
        from backend.generation import ssm_fast
        for family in ("mamba", "mamba2"):
            model = tiny_model(family)
            ids = ids_for(length=11)
            with torch.no_grad():
                hf_full = model(ids).logits
            assert ssm_fast.enable(model) == "triton"
            with torch.no_grad():
                ours = model(ids).logits
            assert torch.allclose(ours, hf_full, atol=2e-4, rtol=1e-4), (family, (ours - hf_full).abs().max())
            check_prefill_then_decode(model, family, hf_full, ids, cut=7)
            print("ok", family)
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1", "SSM_ARENA_KERNELS": "triton", "USE_HUB_KERNELS": "0",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ok mamba\n" in proc.stdout and "ok mamba2" in proc.stdout
