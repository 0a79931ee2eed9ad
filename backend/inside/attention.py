"""A transformer's attention maps, from Hugging Face's own attention modules.

SDPA / flash attention never materialise the softmax weights, so the inspection forward switches the model
to Hugging Face's "eager" attention (`set_attn_implementation`), asks for `output_attentions`, and switches it
back afterwards, also on errors. The caller holds the generator's lock, so no generation runs on the model
while it is switched. Eager and SDPA compute the same function (the tests compare their logits).

Shape glossary: L tokens, Y layers, Hq query heads.
    model(input_ids (1, L), output_attentions=True).attentions: Y x (1, Hq, L, L), softmax over the last axis
    attention_maps(...) -> (Y, L, L) float32, averaged over heads; row q = what position q attends to
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def eager_attention(model) -> Iterator[str]:
    """Switch `model` to eager attention while open; yields the implementation it had."""
    before = getattr(model.config, "_attn_implementation", None) or "eager"
    switch = before != "eager" and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield before
    finally:
        if switch:
            model.set_attn_implementation(before)


def attention_maps(model, input_ids: torch.Tensor) -> tuple[np.ndarray, str]:
    """(Y, L, L) head-averaged attention weights of every layer, and the implementation the model had."""
    with eager_attention(model) as before, torch.inference_mode():
        out = model(input_ids=input_ids, use_cache=False, output_attentions=True)
    maps = [a for a in (out.attentions or ()) if a is not None]
    if not maps:
        raise ValueError(f"{type(model).__name__} returned no attention weights, even with eager attention.")
    return np.stack([a[0].float().mean(0).cpu().numpy() for a in maps]).astype(np.float32), before
