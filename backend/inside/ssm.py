"""Read a Mamba / Mamba-2 model's selection mechanism from its own forward pass, through hooks.

Which forward ran does not matter: Hugging Face's (`hf-torch`) and our fast path (`backend.generation.ssm_fast`,
kernels/ on GPU or their PyTorch references on CPU) both call the mixer's `in_proj`, `x_proj` (Mamba-1) and
`out_proj` as modules, so forward hooks on those three see the same tensors either way:

    Mamba-1 (MambaMixer)    in_proj  out: (1, L, 2D) = x | gate
                            x_proj   in:  (1, L, D)  the conv output after SiLU (what the scan reads)
                                     out: (1, L, R+2N) = time_step | B | C
                            out_proj in:  (1, L, D)  the layer's gated scan output y * silu(gate)
    Mamba-2 (Mamba2Mixer,   in_proj  out: (1, L, I + (I+2GN) + H) = gate | xBC | dt
      a hybrid's            out_proj in:  (1, L, I)  the layer's normed, gated scan output
      BambaMixer)

From these and the layer's own parameters (dt_proj, A_log, D, dt_bias, conv1d, norm), `mamba1_layer` and
`mamba2_layer` run the selective-scan recurrence once more, token by token in float32, keeping what neither
forward exposes: the state after every token. Its output is compared with the captured out_proj input
(`check`), so a mismatch between this reading and the model shows up as a number, never silently. At chosen
positions e they also unroll the recurrence: how much of token t is left in the state at e (retained) and the
weight of x_t in y_e (an implicit attention row; for Mamba-2 the row of the SSD matrix).

Shape glossary: L tokens, D inner channels (Mamba-1), N state size, R dt rank, H heads, P head dim
(I = H * P), G groups of B/C (Mamba-2), K conv width. Equations: Mamba paper (Gu & Dao 2023) Algorithm 2 and
Section 3.5.2 (Δ as a gate: h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t, y_t = C_t h_t + D x_t); Mamba-2 paper
(Dao & Gu 2024) Section 7 (scalar A per head, grouped B / C).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

MIXERS = {"MambaMixer": "mamba", "Mamba2Mixer": "mamba2", "BambaMixer": "mamba2"}  # class name -> math
HOOKED = ("in_proj", "x_proj", "out_proj")
BLOCK = 128  # tokens discretised at once (Mamba-1: BLOCK x D x N floats)
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)")  # backbone.layers.3.mixer, model.layers.3.mamba


def mixers(model) -> list:
    """The model's Mamba / Mamba-2 mixers in layer order (a hybrid's BambaMixers too; other classes are not read)."""
    return [m for m in model.modules() if type(m).__name__ in MIXERS]


def layer_index(model, modules: list) -> list[int]:
    """The model's layer number of each module (the `i` of `...layers.i...` in its qualified name: Mamba's
    `backbone.layers.i.mixer`, Bamba's `model.layers.i.mamba` / `.self_attn`, GPT-2's `transformer.h.i.attn`);
    their position in `modules` where a name has no layer number."""
    names = {id(m): n for n, m in model.named_modules()}
    found = [_LAYER.search(names.get(id(m), "")) for m in modules]
    if not all(found):
        return list(range(len(modules)))
    return [int(f.group(1)) for f in found]


@contextlib.contextmanager
def captured(model) -> Iterator[dict]:
    """While open, every call of a mixer's in_proj / x_proj / out_proj stores (input, output) under
    (layer index, name) in the yielded dict; the hooks are removed on exit (also on errors)."""
    seen: dict = {}
    handles = []

    def keeper(key):
        def hook(_module, args, output):
            seen[key] = (args[0].detach(), output.detach())
        return hook

    try:
        for idx, mixer in enumerate(mixers(model)):
            for name in HOOKED:
                sub = getattr(mixer, name, None)
                if isinstance(sub, torch.nn.Module):
                    handles.append(sub.register_forward_hook(keeper((idx, name))))
        yield seen
    finally:
        for h in handles:
            h.remove()


def _block_norms(hs: torch.Tensor, h_before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """States hs (b, ...) of a block of tokens and the state before it -> (||h_t||, ||h_t - h_{t-1}|| / ||h_t||),
    each (b,)."""
    flat = hs.reshape(hs.shape[0], -1)
    prev = torch.cat([h_before.reshape(1, -1), flat[:-1]])
    n = torch.linalg.vector_norm(flat, dim=1)
    return n, torch.linalg.vector_norm(flat - prev, dim=1) / n.clamp_min(1e-30)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _reads(ends: tuple[int, ...], L: int, delta: torch.Tensor, fn) -> dict[str, dict[int, np.ndarray]]:
    """{"retained": {e: (L,)}, "weight": {e: (L,)}} at each position e: fn(S, e) -> (retained, unnormalised weight)
    for tokens 0..e, with S[t] = delta[t+1] + ... + delta[e] (the step sizes since t, 0 for t = e; per channel or
    head); the weight is normalised to sum 1; NaN for tokens after e."""
    out: dict[str, dict[int, np.ndarray]] = {"retained": {}, "weight": {}}
    for e in ends:
        d = delta[: e + 1]
        S = d.flip(0).cumsum(0).flip(0) - d  # (e+1, C)
        retained, weight = fn(S, e)
        for name, v in (("retained", retained), ("weight", weight / weight.sum().clamp_min(1e-30))):
            out[name][e] = np.full(L, np.nan, np.float32)
            out[name][e][: e + 1] = _np(v)
    return out


def mamba1_layer(mixer, seen: dict, idx: int, ends: tuple[int, ...]) -> dict:
    """One MambaMixer's Δ (L, D), per-token state norms, retained shares and implicit attention rows at `ends`,
    from the hooked tensors."""
    _, xz = seen[(idx, "in_proj")]
    xc, proj = seen[(idx, "x_proj")]
    y_model = seen[(idx, "out_proj")][0][0].float()  # (L, D)
    gate = xz[0].float().chunk(2, dim=-1)[1]  # (L, D)
    x = xc[0].float()  # (L, D)
    n, r = mixer.ssm_state_size, mixer.time_step_rank
    time_step, B, C = torch.split(proj[0].float(), [r, n, n], dim=-1)  # (L, R), (L, N), (L, N)
    delta = F.softplus(F.linear(time_step, mixer.dt_proj.weight.float(), mixer.dt_proj.bias.float()))  # (L, D)
    A = -torch.exp(mixer.A_log.float())  # (D, N)
    Dskip = mixer.D.float()  # (D,)
    L = x.shape[0]
    h = x.new_zeros(A.shape)  # (D, N)
    ys, norms, change = [], [], []
    for s in range(0, L, BLOCK):  # discretise a block at once: exp(ΔA) (zero-order hold), ΔB (paper Section 2)
        dA = torch.exp(delta[s:s + BLOCK, :, None] * A)  # (b, D, N)
        dBx = (delta[s:s + BLOCK] * x[s:s + BLOCK])[..., None] * B[s:s + BLOCK, None, :]  # (b, D, N)
        hs, h_before = [], h
        for j in range(dA.shape[0]):  # Algorithm 2 of the Mamba paper, one token at a time
            h = dA[j] * h + dBx[j]
            hs.append(h)
        hs = torch.stack(hs)  # (b, D, N)
        ys.append(torch.einsum("bdn,bn->bd", hs, C[s:s + BLOCK]))
        n, c = _block_norms(hs, h_before)
        norms.append(n)
        change.append(c)
    y = (torch.cat(ys) + Dskip * x) * F.silu(gate)  # (L, D): the gated output HF and our fast path give out_proj

    def reads(S, e):  # exp(A S_t) per (channel, entry): what is left of token t at e; x_t's weight in y_e is
        # Δ_t sum_n C_e,n exp(A_n S_t) B_t,n per channel (the unrolled recurrence: an implicit attention row)
        parts = []
        for s in range(0, S.shape[0], BLOCK):
            b = slice(s, min(s + BLOCK, S.shape[0]))
            E = torch.exp(S[b, :, None] * A)  # (b, D, N)
            parts.append((E.mean((1, 2)), ((E * B[b, None, :] * C[e]).sum(-1) * delta[b]).abs().sum(-1)))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    at = _reads(ends, L, delta, reads)
    check = float((y - y_model).abs().max() / y_model.abs().max().clamp_min(1e-30))
    return {"delta": _np(delta.mean(-1)), "state_norm": _np(torch.cat(norms)), "change": _np(torch.cat(change)),
            **at, "check": check, "final_state": h}


def mamba2_inputs(mixer, seen: dict, idx: int) -> dict[str, torch.Tensor]:
    """What one Mamba2Mixer's scan reads, in float32: x (L, H, P), delta (L, H), A (H,), B and C (L, H, N)
    with the groups repeated to heads, D (H,), gate (L, I); from its hooked in_proj output and its own conv1d."""
    _, proj = seen[(idx, "in_proj")]
    H, P, G, N = mixer.num_heads, mixer.head_dim, mixer.n_groups, mixer.ssm_state_size
    I = mixer.intermediate_size  # noqa: E741 (the paper's name)
    gate, xBC, dt = proj[0].float().split([I, mixer.conv_dim, H], dim=-1)  # (L, I), (L, I+2GN), (L, H)
    L = xBC.shape[0]
    conv = mixer.conv1d  # the layer's depthwise causal conv, its own weights, in float32
    xBC = F.conv1d(xBC.T[None], conv.weight.float(), None if conv.bias is None else conv.bias.float(),
                   conv.stride, conv.padding, conv.dilation, conv.groups)[0, :, :L].T  # (L, I+2GN)
    x, B, C = torch.split(mixer.act(xBC), [I, G * N, G * N], dim=-1)
    lo, hi = (float(v) for v in mixer.time_step_limit)
    return {"x": x.reshape(L, H, P), "delta": F.softplus(dt + mixer.dt_bias.float()).clamp(lo, hi),
            "A": -torch.exp(mixer.A_log.float()), "D": mixer.D.float(), "gate": gate,
            "B": B.reshape(L, G, N).repeat_interleave(H // G, dim=1),
            "C": C.reshape(L, G, N).repeat_interleave(H // G, dim=1)}


def mamba2_layer(mixer, seen: dict, idx: int, ends: tuple[int, ...]) -> dict:
    """One Mamba2Mixer's Δ per head (L, H), state norms, retained shares and SSD matrix rows at `ends`, from the
    hooked tensors."""
    y_model = seen[(idx, "out_proj")][0][0].float()  # (L, I)
    v = mamba2_inputs(mixer, seen, idx)
    x, delta, A, B, C, Dskip, gate = (v[k] for k in ("x", "delta", "A", "B", "C", "D", "gate"))
    L, H, P = x.shape
    dA = torch.exp(delta * A)  # (L, H): the decay of each head at each token
    h = x.new_zeros(H, P, B.shape[-1])  # (H, P, N)
    ys, norms, change = [], [], []
    for s in range(0, L, BLOCK):
        hs, h_before = [], h
        for t in range(s, min(s + BLOCK, L)):  # h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t^T, per head
            h = dA[t][:, None, None] * h + (delta[t][:, None] * x[t])[..., None] * B[t][:, None, :]
            hs.append(h)
        hs = torch.stack(hs)  # (b, H, P, N)
        ys.append(torch.einsum("bhpn,bhn->bhp", hs, C[s:s + BLOCK]) + Dskip[:, None] * x[s:s + BLOCK])
        n, c = _block_norms(hs, h_before)
        norms.append(n)
        change.append(c)
    y = torch.cat(ys).reshape(L, H * P)
    y = mixer.norm(y, gate).float()  # the layer's gated RMSNorm module, as its forward applies it
    # retained: exact, the decay is a scalar per head. weight: the SSD matrix row of e (Mamba-2 paper Sections
    # 4-5), M[e, t] = C_e . B_t exp(A S_t) Δ_t per head
    at = _reads(ends, L, delta, lambda S, e: (torch.exp(S * A).mean(-1), (
        (B[: e + 1] * C[e]).sum(-1) * torch.exp(S * A) * delta[: e + 1]).abs().sum(-1)))
    check = float((y - y_model).abs().max() / y_model.abs().max().clamp_min(1e-30))
    return {"delta": _np(delta.mean(-1)), "delta_heads": _np(delta), "state_norm": _np(torch.cat(norms)),
            "change": _np(torch.cat(change)), **at, "check": check, "final_state": h}


def read(model, seen: dict, L: int, ends: tuple[int, ...] = ()) -> tuple[dict[str, np.ndarray], list]:
    """The arrays of every mixer layer of `model` from what `captured` saw during one forward of L tokens.

    Returns the arrays of backend.inside.data ({"delta", "state_norm", "change", "retained", "weight": (Y, L),
    "check": (Y,)}, Mamba-2 also "delta_heads" (Y, L, H)), plus "retained@{e}" and "weight@{e}" (Y, L) for each
    extra reference position e in `ends` (NaN after e), and the final state of every layer. Y counts the mixer
    layers only (a hybrid's attention layers are not here: `layer_index` says which layers of the model these
    are)."""
    layers = mixers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MambaMixer, Mamba2Mixer or BambaMixer to read.")
    ends = tuple(sorted({L - 1, *(int(e) for e in ends if 0 <= int(e) < L)}))
    per_layer = [(mamba1_layer if MIXERS[type(m).__name__] == "mamba" else mamba2_layer)(m, seen, i, ends)
                 for i, m in enumerate(layers)]
    arrays = {k: np.stack([p[k] for p in per_layer]).astype(np.float32) for k in ("delta", "state_norm", "change")}
    for e in ends:
        for k in ("retained", "weight"):
            arrays[k if e == L - 1 else f"{k}@{e}"] = np.stack([p[k][e] for p in per_layer])
    arrays["check"] = np.array([p["check"] for p in per_layer], dtype=np.float32)
    if "delta_heads" in per_layer[0]:
        arrays["delta_heads"] = np.stack([p["delta_heads"] for p in per_layer]).astype(np.float32)  # (Y, L, H)
    return arrays, [p["final_state"] for p in per_layer]


def trace(model, input_ids: torch.Tensor, ends: tuple[int, ...] = ()) -> tuple[dict[str, np.ndarray], list]:
    """Run `model` once on input_ids (1, L) with hooks and read every mixer layer (`read`)."""
    if not mixers(model):
        raise ValueError(f"{type(model).__name__} has no MambaMixer, Mamba2Mixer or BambaMixer to read.")
    with captured(model) as seen, torch.inference_mode():
        model(input_ids=input_ids, use_cache=False)
        return read(model, seen, input_ids.shape[1], ends)
