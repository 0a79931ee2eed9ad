"""The explainer's SSD demonstration on a loaded Mamba-2 model (torch; the torch-free ones are in toys.py).

    mamba2_layer_inputs(gen, text, layer)  what one layer's scan read during the model's own forward (hooks)
    random_inputs(length)                  inputs of toy-mamba2's layer size when no Mamba-2 model is loaded
    ssd_demo(inputs, lengths)              the layer three ways (backend.inside.ssd): their agreement, the chunked
                                           form against the layer's own output, and time against length

Shape glossary: L tokens, H heads, P head dim, N state size (see backend.inside.ssd).
"""

from __future__ import annotations

import torch

from backend.inside import ssd, ssm
from backend.inside.core import InspectError, hf_parts

RANDOM_SIZES = {"H": 8, "P": 64, "N": 64}  # toy-mamba2's layer, for the fallback inputs


def mamba2_layer_inputs(gen, text: str, layer: int = 0) -> dict:
    """xbar (L, H, P), log_a (L, H), B, C (L, H, N) and the checks' extras of Mamba-2 layer `layer` of `gen`
    (a Mamba-2 model, or a hybrid whose SSM layers are Mamba-2 mixers: `layer` counts those only, and
    `model_layer` says which layer of the model it is) on `text`, captured by the hooks during one forward of
    the model's own path."""
    parts = hf_parts(gen)
    layers = ssm.mixers(parts[0]) if parts is not None and gen.info.family in ("mamba2", "hybrid") else []
    if not layers:
        raise InspectError(f"'{gen.info.name}' is not a loaded Mamba-2 model or a hybrid with Mamba-2 layers; pick "
                           "one (e.g. toy-mamba2).")
    model, tok = parts
    layer = max(0, min(int(layer), len(layers) - 1))
    ids = torch.tensor([tok(text, return_attention_mask=False)["input_ids"]], device=next(model.parameters()).device)
    with gen.lock, ssm.captured(model) as seen, torch.inference_mode():
        model(input_ids=ids, use_cache=False)
        v = ssm.mamba2_inputs(layers[layer], seen, layer)
        v["y_model"] = seen[(layer, "out_proj")][0][0].float()
    v.update(xbar=v["delta"][..., None] * v["x"], log_a=v["delta"] * v["A"], mixer=layers[layer], layer=layer,
             model_layer=int(getattr(layers[layer], "layer_idx", layer)))
    return v


def random_inputs(length: int, seed: int = 0) -> dict:
    """Inputs of toy-mamba2's layer size drawn at random (used when no Mamba-2 model is loaded)."""
    g = torch.Generator().manual_seed(seed)
    H, P, N = RANDOM_SIZES["H"], RANDOM_SIZES["P"], RANDOM_SIZES["N"]
    delta = torch.nn.functional.softplus(torch.randn(length, H, generator=g) - 3)
    return {"xbar": delta[..., None] * torch.randn(length, H, P, generator=g),
            "log_a": -delta * torch.rand(H, generator=g) * 4, "B": torch.randn(length, H, N, generator=g),
            "C": torch.randn(length, H, N, generator=g)}


def ssd_demo(v: dict, lengths: list[int], chunk: int = 64, repeats: int = 3) -> dict:
    """Agreement of the three forms on inputs `v`, the chunked form against the layer's own output when `v`
    came from a model, and timing rows {length, form, ms}."""
    args = (v["xbar"], v["log_a"], v["B"], v["C"])
    with torch.inference_mode():
        out = {"agreement": ssd.agreement(*args, chunk=chunk), "length": int(v["xbar"].shape[0])}
        if "mixer" in v:  # y = norm((scan + D x), gate): the layer's output, from the chunked form
            y, _ = ssd.chunked(*args, chunk=chunk)
            y = (y + v["D"][:, None] * v["x"]).reshape(y.shape[0], -1)
            y = v["mixer"].norm(y, v["gate"]).float()
            out["model_check"] = float((y - v["y_model"]).abs().max() / v["y_model"].abs().max().clamp_min(1e-30))
    lengths = sorted({int(n) for n in lengths if 0 < int(n) <= out["length"]})
    out["timings"] = ssd.timings(*args, lengths, chunk=chunk, repeats=repeats)
    return out
