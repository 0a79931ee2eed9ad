"""backend.training.ssm_ops for Mamba-2: with `enable_training`, a tiny Mamba2ForCausalLM in training mode gives the
same loss and the same gradient for every parameter as Hugging Face's own pure-PyTorch forward (fp32), with
and without padding in the attention mask; in eval mode the previous forward runs."""

from __future__ import annotations

import copy

import pytest
import torch

VOCAB = 64


def tiny_mamba2(kind: str, seed: int = 0):
    from transformers import Mamba2Config, Mamba2ForCausalLM

    from backend.training.trio import model_config

    torch.manual_seed(seed)
    if kind == "preset":  # the "tiny" preset of the bundled trio (n_groups 1, chunk 16)
        cfg = model_config("toy-mamba2", preset="tiny", vocab_size=VOCAB)
    else:  # two B/C groups (the gated norm normalises per group in transformers 5.24), a small HF chunk
        cfg = Mamba2Config(vocab_size=VOCAB, hidden_size=32, num_heads=4, head_dim=16, expand=2, n_groups=2,
                           state_size=16, num_hidden_layers=2, chunk_size=8, conv_kernel=4,
                           time_step_limit=(0.01, 2.0))
    model = Mamba2ForCausalLM(cfg)
    with torch.no_grad():  # non-trivial A, D, dt, conv bias (else padding stays 0 anyway): wrong math cannot pass
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "D", "dt_bias", "conv1d.bias")):
                p.add_(torch.randn_like(p) * 0.3)
    return model


KINDS = [pytest.param("preset", id="tiny-preset-G1"), pytest.param("groups", id="G2-dt-limit")]


def batch(length: int, pad: int, seed: int = 1):
    ids = torch.randint(2, VOCAB, (2, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(2, length, dtype=torch.long)
    if pad:
        mask[1, :pad] = 0  # left padding of the second row
        ids[1, :pad] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def loss_and_grads(model, ids, mask, labels):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def pair(kind):
    from backend.training.ssm_ops import enable_training

    hf = tiny_mamba2(kind).train()
    ours = copy.deepcopy(hf)
    assert enable_training(ours, kinds=("mamba2",)) == {"mamba2": "torch-chunked-ssd"}
    return hf, ours.train()


@pytest.mark.parametrize("pad", [0, 5], ids=["no-padding", "left-padding"])
@pytest.mark.parametrize("length", [21, 80], ids=["L21", "L80-two-chunks"])
@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_every_gradient_equal_hf(kind, length, pad, monkeypatch):
    import kernels.ssd_train

    calls = []
    real = kernels.ssd_train.ssd_chunked
    monkeypatch.setattr(kernels.ssd_train, "ssd_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    hf, ours = pair(kind)
    ids, mask, labels = batch(length, pad)
    loss_hf, g_hf = loss_and_grads(hf, ids, mask, labels)
    loss, g = loss_and_grads(ours, ids, mask, labels)
    assert len(calls) == hf.config.num_hidden_layers  # our path ran, once per layer
    assert torch.allclose(loss, loss_hf, rtol=1e-5, atol=1e-6), (loss, loss_hf)
    assert set(g) == set(g_hf) and len(g) == len(list(hf.parameters()))
    for name, want in g_hf.items():
        scale = want.abs().max().clamp_min(1e-8)
        err = ((g[name] - want).abs().max() / scale).item()
        assert err < 1e-4, (name, err)


def test_padding_changes_nothing_for_the_padded_row():
    """With the mask (training mode, our path), the left-padded row's logits at its real positions equal those
    of the same tokens without the padding."""
    _, ours = pair("preset")
    ids, mask, _ = batch(30, 6)
    with torch.no_grad():
        padded = ours(input_ids=ids[1:], attention_mask=mask[1:]).logits[:, 6:]
        alone = ours(input_ids=ids[1:, 6:]).logits
    assert torch.allclose(padded, alone, rtol=1e-5, atol=1e-5), (padded - alone).abs().max()


def test_eval_mode_uses_previous_forward(monkeypatch):
    import kernels.ssd_train

    hf, ours = pair("groups")
    hf.eval()
    ours.eval()

    def boom(*a, **k):
        raise AssertionError("the training path ran in eval mode")

    monkeypatch.setattr(kernels.ssd_train, "ssd_chunked", boom)
    ids, mask, _ = batch(19, 3)
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids, attention_mask=mask).logits,
                           hf(input_ids=ids, attention_mask=mask).logits)
    ours.train()  # and back in training mode ours runs again
    monkeypatch.undo()
    with torch.no_grad():
        train_logits = ours(input_ids=ids, attention_mask=mask).logits
        hf.train()
        assert torch.allclose(train_logits, hf(input_ids=ids, attention_mask=mask).logits, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_close_to_hf():
    hf, ours = pair("preset")
    ids, mask, labels = batch(40, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_hf, g_hf = loss_and_grads(hf, ids, mask, labels)
        loss, g = loss_and_grads(ours, ids, mask, labels)
    assert abs(loss.item() - loss_hf.item()) < 2e-2 * abs(loss_hf.item())
    name = next(n for n in g_hf if n.endswith("in_proj.weight"))
    assert ((g[name] - g_hf[name]).abs().max() / g_hf[name].abs().max()).item() < 0.1


def test_disable_training_restores_forward():
    from backend.training.ssm_ops import disable_training

    _, ours = pair("preset")
    disable_training(ours)
    mixers = [m for m in ours.modules() if type(m).__name__ == "Mamba2Mixer"]
    assert mixers and not any(getattr(m, "_arena_train", False) for m in mixers)
