"""Training a hybrid (Hugging Face BambaForCausalLM) on our fast Mamba-2 training ops: `enable_training(kinds=
("mamba2",))` patches its BambaMixers (not its attention layers), the loss and every parameter's gradient equal
transformers' own training forward (fp32; without mamba-ssm that is its pure-PyTorch SSD), and
`choose_path(model, "hybrid", ...)` keeps our path only after that check on the run's device."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.backend.generation.test_hybrid_fast import BINDING, KINDS, VOCAB, mixers, tiny_hybrid


def batch(length: int, pad: int, seed: int = 1):
    ids = torch.randint(2, VOCAB, (2, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(2, length, dtype=torch.long)
    if pad:
        mask[1, :pad] = 0  # left padding of the second row
        ids[1, :pad] = 0
    return ids, mask, ids.masked_fill(mask == 0, -100)


def loss_and_grads(model, ids, mask, labels):
    """use_cache=False as the training loop passes it: unlike Mamba2Model, BambaModel builds a cache in training
    mode too unless told not to, and with a cache the mixers take their inference path (ours stays out)."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("pad", [0, 5], ids=["no-padding", "left-padding"])
@pytest.mark.parametrize("length", [21, 80], ids=["L21", "L80-two-of-our-chunks"])
@pytest.mark.parametrize("kind", [*KINDS, BINDING])  # the clamp applies in training
def test_loss_and_every_gradient_equal_hf(kind, length, pad, monkeypatch):
    import kernels.ssd_train
    from backend.training.ssm_ops import enable_training

    calls = []
    real = kernels.ssd_train.ssd_chunked
    monkeypatch.setattr(kernels.ssd_train, "ssd_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    hf = tiny_hybrid(**kind).train()
    ours = copy.deepcopy(hf)
    assert enable_training(ours, kinds=("mamba2",)) == {"mamba2": "torch-chunked-ssd"}
    assert all("forward" in m.__dict__ for m in mixers(ours))
    assert not any("forward" in m.__dict__ for m in ours.modules() if type(m).__name__ == "BambaAttention")
    ids, mask, labels = batch(length, pad)
    loss_hf, g_hf = loss_and_grads(hf, ids, mask, labels)
    assert not calls
    loss, g = loss_and_grads(ours, ids, mask, labels)
    assert len(calls) == 2  # our SSD ran once per Mamba layer
    assert torch.allclose(loss, loss_hf, rtol=1e-5, atol=1e-6), (loss, loss_hf)
    assert set(g) == set(g_hf) and len(g) == len(list(hf.parameters()))
    for name, want in g_hf.items():
        err = ((g[name] - want).abs().max() / want.abs().max().clamp_min(1e-8)).item()
        assert err < 1e-4, (name, err)


def test_choose_path_verifies_and_keeps_our_path():
    from backend.training.paths import HF_PATH, choose_path

    model = tiny_hybrid().train()
    ids, _, _ = batch(40, 0)
    x, y = ids[:, :-1], ids[:, 1:]
    logs = []
    path, check = choose_path(model, "hybrid", x, y, mode="on", log=logs.append)
    assert path == "torch-chunked-ssd" and check["ok"] and check["loss_rel_err"] < 1e-5
    assert check["grad_max_rel_err"] < 1e-4 and logs and logs[0].startswith("hybrid: fast training path")
    assert model.training and all(m._arena_train for m in mixers(model))
    assert choose_path(tiny_hybrid(), "hybrid", x, y, mode="off") == (HF_PATH["hybrid"], {}) == ("hf-torch", {})


def test_choose_path_rejects_a_wrong_fast_path(monkeypatch):
    """A fast path that disagrees is dropped under "auto" (transformers' path runs) and raises under "on"."""
    import kernels.ssd_train
    from backend.training.paths import choose_path

    real = kernels.ssd_train.ssd_chunked

    def leaky(*a, **k):  # the future leaks in (a plain rescale would vanish in the gated RMSNorm)
        y = real(*a, **k)
        return y + 0.5 * y.flip(1)

    monkeypatch.setattr(kernels.ssd_train, "ssd_chunked", leaky)
    ids, _, _ = batch(40, 0)
    x, y = ids[:, :-1], ids[:, 1:]
    model = tiny_hybrid().train()
    path, check = choose_path(model, "hybrid", x, y, mode="auto", log=lambda s: None)
    assert path == "hf-torch" and not check["ok"]
    assert not any(getattr(m, "_arena_train", False) for m in mixers(model))
    with pytest.raises(RuntimeError, match="fast hybrid training path disagrees"):
        choose_path(tiny_hybrid().train(), "hybrid", x, y, mode="on", log=lambda s: None)


def test_a_hybrid_without_mamba2_mixers_keeps_transformers_path():
    """family "hybrid" names Jamba / Zamba2 too: with no mixer our ops know, nothing is patched or checked."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from backend.training.paths import choose_path
    from backend.training.ssm_ops import has_mixers

    model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                                         num_attention_heads=2, vocab_size=VOCAB))
    assert not has_mixers(model, "mamba2") and has_mixers(tiny_hybrid(), "mamba2")
    ids, _, _ = batch(12, 0)
    assert choose_path(model, "hybrid", ids[:, :-1], ids[:, 1:], mode="on") == ("hf-torch", {})
