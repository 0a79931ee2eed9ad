"""backend.training.ssm_ops, Mamba-1: with `enable_training` a tiny MambaForCausalLM in train mode gives Hugging
Face's loss and parameter gradients (PyTorch reference in-process; our Triton forward + backward under the
Triton interpreter in a subprocess), with and without a padding mask; eval mode keeps the old forward."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]


def tiny_mamba(seed: int = 0):
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(vocab_size=64, hidden_size=32, state_size=4, intermediate_size=64, num_hidden_layers=2,
                      time_step_rank=4, conv_kernel=4, use_mambapy=False)
    model = MambaForCausalLM(cfg)
    with torch.no_grad():  # non-trivial A, D, dt so that a wrong recurrence cannot pass
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "D")) or "dt_proj" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model.train()


def batch(seed=1, length=13):
    ids = torch.randint(0, 64, (2, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding on the second row
    return ids, mask


def loss_and_grads(model, ids, mask=None):
    model.zero_grad(set_to_none=True)
    loss = model(ids, attention_mask=mask, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def compare(model, ids, mask):
    """(loss, grads) of Hugging Face's training forward, then of ours after enable_training."""
    from backend.training import ssm_ops

    want = loss_and_grads(model, ids, mask)
    paths = ssm_ops.enable_training(model, kinds=("mamba",))
    got = loss_and_grads(model, ids, mask)
    ssm_ops.disable_training(model)
    return paths, want, got


def assert_same(want, got):
    (l_w, g_w), (l_g, g_g) = want, got
    assert torch.allclose(l_g, l_w, atol=1e-5, rtol=1e-5), (l_g, l_w)
    assert set(g_g) == set(g_w)
    for name, gw in g_w.items():
        scale = gw.abs().max().clamp_min(1e-6)
        err = ((g_g[name] - gw).abs().max() / scale).item()
        assert err < 1e-4, f"{name}: rel err {err:.2e}"
    assert any(n.endswith("A_log") for n in g_w) and any("dt_proj.bias" in n for n in g_w)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "left-padded"])
def test_reference_path_matches_hf_loss_and_grads(masked, monkeypatch):
    monkeypatch.setenv("SSM_ARENA_KERNELS", "reference")
    model = tiny_mamba()
    ids, mask = batch()
    paths, want, got = compare(model, ids, mask if masked else None)
    assert paths == {"mamba": "reference-train"}
    assert_same(want, got)


def test_eval_mode_keeps_the_previous_forward():
    from backend.training import ssm_ops

    model = tiny_mamba(seed=2).eval()
    ids, _ = batch(seed=3, length=6)
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want_logits = model(ids).logits
        want = model.generate(ids, **kw)
        ssm_ops.enable_training(model, kinds=("mamba",))
        assert torch.equal(model(ids).logits, want_logits)
        assert torch.equal(model.generate(ids, **kw), want)
    mixer = model.backbone.layers[0].mixer
    assert mixer._arena_train
    ssm_ops.enable_training(model, kinds=("mamba",))  # idempotent
    ssm_ops.disable_training(model)
    assert not mixer._arena_train and mixer.forward.__func__ is type(mixer).forward  # Hugging Face's again


def test_triton_path_in_the_interpreter_matches_hf():
    """The same comparison through selective_scan_train's Triton kernels (forced path, TRITON_INTERPRET=1),
    in a fresh process so that the kernels are decorated for the interpreter."""
    script = textwrap.dedent("""
        import torch
        import tests.kernels.conftest  # noqa: F401  (vectorised interpreter scan: same results, faster)
        from tests.backend.training.test_ssm_train_mamba1 import tiny_mamba, batch, compare, assert_same
        ids, mask = batch()
        for m in (None, mask):
            paths, want, got = compare(tiny_mamba(), ids, m)
            assert paths == {"mamba": "triton-train"}, paths
            assert_same(want, got)
        print("ok triton")
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1", "SSM_ARENA_KERNELS": "triton", "USE_HUB_KERNELS": "0",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ok triton" in proc.stdout
