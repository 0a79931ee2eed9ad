"""backend.inside.ssm: Δ, decay products and states read through hooks equal what the layer's weights give when
recomputed here by hand, on tiny Mamba / Mamba-2 models (odd lengths, perturbed A / D / dt), whichever
forward runs (Hugging Face's or our fast path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from backend.generation import ssm_fast
from backend.inside import ssm

ARCHS = ["mamba", "mamba2"]


@pytest.fixture(scope="module")
def models(tiny_dirs):
    """arch -> tiny model with A_log, D and dt biases moved off their initial values (a wrong reading of any of
    them cannot pass)."""
    out = {}
    torch.manual_seed(3)
    for arch in ARCHS:
        m = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch]).eval()
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.endswith(("A_log", "D", "dt_bias")) or "dt_proj.bias" in name:
                    p.add_(torch.randn_like(p) * 0.3)
        out[arch] = m
    return out


def _mixer_inputs(model, ids) -> list[torch.Tensor]:
    """Each mixer's input hidden states (L, hidden), from pre-hooks on the mixers themselves."""
    got = []
    hs = [m.register_forward_pre_hook(lambda _m, args: got.append(args[0][0].detach().float()))
          for m in ssm.mixers(model)]
    with torch.inference_mode():
        model(input_ids=ids, use_cache=False)
    for h in hs:
        h.remove()
    return got


@torch.no_grad()
def _causal_conv(x: torch.Tensor, conv) -> torch.Tensor:
    """x (L, C) through the depthwise causal conv by the definition: out[t] = b + sum_k w[k] x[t - K + 1 + k]."""
    w = conv.weight[:, 0].float()  # (C, K)
    K = w.shape[1]
    xp = torch.cat([x.new_zeros(K - 1, x.shape[1]), x])
    out = sum(w[:, k] * xp[k:k + x.shape[0]] for k in range(K))
    return out + (conv.bias.float() if conv.bias is not None else 0)


@torch.no_grad()
def _by_hand(mixer, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Δ (L, channels or heads), log decay per token broadcast to (L, ..., N) or (L, H)) from the weights."""
    proj = F.linear(u, mixer.in_proj.weight.float(), mixer.in_proj.bias)
    A = -torch.exp(mixer.A_log.float())
    if type(mixer).__name__ == "MambaMixer":
        x = F.silu(_causal_conv(proj.chunk(2, dim=-1)[0], mixer.conv1d))
        ts = F.linear(x, mixer.x_proj.weight.float())[:, :mixer.time_step_rank]
        delta = F.softplus(ts @ mixer.dt_proj.weight.float().T + mixer.dt_proj.bias.float())  # (L, D)
        return delta, A  # decay of channel d, entry n at t: exp(Δ[t, d] A[d, n])
    dt = proj[:, -mixer.num_heads:]
    delta = F.softplus(dt + mixer.dt_bias.float()).clamp(*(float(v) for v in mixer.time_step_limit))  # (L, H)
    return delta, A


@torch.no_grad()
def _retained_by_products(delta: torch.Tensor, A: torch.Tensor, end: int) -> torch.Tensor:
    """Retained share of each token t <= end at `end`: running products of the per-token decays (no sums of
    exponents), averaged over all decay entries."""
    decay = torch.exp(delta[..., None] * A) if A.dim() == 2 else torch.exp(delta * A)  # (L, D, N) or (L, H)
    out, prod = [], torch.ones_like(decay[0])
    for t in range(end, -1, -1):
        out.append(prod.mean())
        prod = prod * decay[t]
    return torch.stack(out[::-1])


@pytest.mark.parametrize("fast", [False, True], ids=["hf-forward", "fast-path"])
@pytest.mark.parametrize("arch", ARCHS)
def test_delta_and_decay_products_match_the_weights(models, arch, fast):
    model = models[arch]
    if fast:
        ssm_fast.enable(model)
    try:
        ids = torch.randint(4, 300, (1, 37), generator=torch.Generator().manual_seed(1))
        arrays, _ = ssm.trace(model, ids, ends=(20,))
        inputs = _mixer_inputs(model, ids)
    finally:
        ssm_fast.disable(model)
    assert arrays["delta"].shape == (2, 37) and arrays["check"].shape == (2,)
    for layer, (mixer, u) in enumerate(zip(ssm.mixers(model), inputs, strict=True)):
        delta, A = _by_hand(mixer, u)
        torch.testing.assert_close(torch.from_numpy(arrays["delta"][layer]), delta.mean(-1), rtol=1e-4, atol=1e-6)
        if arch == "mamba2":
            torch.testing.assert_close(torch.from_numpy(arrays["delta_heads"][layer]), delta, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.from_numpy(arrays["retained"][layer]), _retained_by_products(delta, A, 36),
                                   rtol=1e-4, atol=1e-6)
        at20 = torch.from_numpy(arrays["retained@20"][layer])
        torch.testing.assert_close(at20[:21], _retained_by_products(delta, A, 20), rtol=1e-4, atol=1e-6)
        assert torch.isnan(at20[21:]).all()
    assert (arrays["retained"][:, -1] == 1).all()  # nothing decays after the last token
    assert float(arrays["check"].max()) < 1e-4, arrays["check"]  # the recurrence reproduces each layer's output


@pytest.mark.parametrize("arch", ARCHS)
def test_states_end_where_the_models_own_cache_ends(models, arch):
    model = models[arch]
    ids = torch.randint(4, 300, (1, 23), generator=torch.Generator().manual_seed(2))
    arrays, finals = ssm.trace(model, ids)
    with torch.inference_mode():
        cache = model(input_ids=ids, use_cache=True).cache
    for layer, h in enumerate(finals):
        ref = cache.get_recurrent_state(layer, state_idx=0)[0].float()
        torch.testing.assert_close(h, ref, rtol=1e-4, atol=1e-5)
        assert arrays["state_norm"][layer, -1] == pytest.approx(float(torch.linalg.vector_norm(ref)), rel=1e-4)
    assert (arrays["change"] >= 0).all() and (arrays["change"][:, 0] == pytest.approx(1.0))  # from a zero state


def test_hooks_are_removed_and_other_models_need_mixers(models):
    model = models["mamba"]
    before = sum(len(m._forward_hooks) for m in model.modules())
    with pytest.raises(RuntimeError), ssm.captured(model) as seen:
        model(input_ids=torch.tensor([[5, 6, 7]]))
        assert {name for _, name in seen} == {"in_proj", "x_proj", "out_proj"}
        raise RuntimeError("boom")
    assert sum(len(m._forward_hooks) for m in model.modules()) == before
    with pytest.raises(ValueError, match="no MambaMixer"):
        ssm.trace(torch.nn.Linear(2, 2), torch.tensor([[1]]))


@torch.no_grad()
def _weights_by_products(mixer, u: torch.Tensor, q: int) -> torch.Tensor:
    """|M[q, t]| summed over channels / heads and normalised: the weight of x_t in y_q, from running products."""
    delta, A = _by_hand(mixer, u)
    proj = F.linear(u, mixer.in_proj.weight.float(), mixer.in_proj.bias)
    if type(mixer).__name__ == "MambaMixer":
        x = F.silu(_causal_conv(proj.chunk(2, dim=-1)[0], mixer.conv1d))
        r, n = mixer.time_step_rank, mixer.ssm_state_size
        B, C = F.linear(x, mixer.x_proj.weight.float())[:, r:].split([n, n], dim=-1)  # (L, N)
        decay = torch.exp(delta[..., None] * A)  # (L, D, N)
        read = lambda t, prod: ((prod * B[t] * C[q]).sum(-1) * delta[t]).abs().sum()  # noqa: E731
    else:
        I, G, N, H = mixer.intermediate_size, mixer.n_groups, mixer.ssm_state_size, mixer.num_heads  # noqa: E741
        xBC = F.silu(_causal_conv(proj[:, I:I + mixer.conv_dim], mixer.conv1d))
        B, C = (t.reshape(-1, G, N).repeat_interleave(H // G, dim=1) for t in xBC[:, I:].split([G * N, G * N], -1))
        decay = torch.exp(delta * A)  # (L, H)
        read = lambda t, prod: ((B[t] * C[q]).sum(-1) * prod * delta[t]).abs().sum()  # noqa: E731
    out, prod = [], torch.ones_like(decay[0])
    for t in range(q, -1, -1):
        out.append(read(t, prod))
        prod = prod * decay[t]
    w = torch.stack(out[::-1])
    return w / w.sum()


@pytest.mark.parametrize("arch", ARCHS)
def test_implicit_attention_rows_match_the_unrolled_recurrence(models, arch):
    model = models[arch]
    ids = torch.randint(4, 300, (1, ssm.BLOCK + 3), generator=torch.Generator().manual_seed(4))  # two blocks
    arrays, _ = ssm.trace(model, ids, ends=(12,))
    for layer, (mixer, u) in enumerate(zip(ssm.mixers(model), _mixer_inputs(model, ids), strict=True)):
        torch.testing.assert_close(torch.from_numpy(arrays["weight"][layer]), _weights_by_products(mixer, u, ssm.BLOCK + 2),
                                   rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.from_numpy(arrays["weight@12"][layer, :13]),
                                   _weights_by_products(mixer, u, 12), rtol=1e-4, atol=1e-6)
    assert np.allclose(arrays["weight"].sum(-1), 1, atol=1e-5)
