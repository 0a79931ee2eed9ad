"""A transformer's attention maps, from Hugging Face's own attention modules.

SDPA / flash attention never materialise the softmax weights, so the inspection forward switches the model
to Hugging Face's "eager" attention (`set_attn_implementation`), asks for `output_attentions`, and switches it
back afterwards, also on errors. The caller holds the generator's lock, so no generation runs on the model
while it is switched. Eager and SDPA compute the same function (the tests compare their logits).

Shape glossary: L tokens, Y attention layers (every layer of a transformer, a few of a hybrid), Hq query heads.
    model(input_ids (1, L), output_attentions=True).attentions: Y x (1, Hq, L, L), softmax over the last axis
    attention_maps(...) -> (Y, L, L) float32, averaged over heads; row q = what position q attends to
    attention_layers(model, Y) -> [the model's layer number of each map]: Hugging Face records the maps of the
        class named in the model's `_can_record_outputs["attentions"]` (LlamaAttention, BambaAttention, ...), so
        the layers holding a module of that class, in order (else the config's attention layers of a hybrid,
        else 0 .. Y-1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from backend.inside.ssm import layer_index


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


def stack_maps(out, model) -> np.ndarray:
    """(Y, L, L) head-averaged attention weights from a forward's output with output_attentions=True."""
    maps = [a for a in (getattr(out, "attentions", None) or ()) if a is not None]
    if not maps:
        raise ValueError(f"{type(model).__name__} returned no attention weights, even with eager attention.")
    return np.stack([a[0].float().mean(0).cpu().numpy() for a in maps]).astype(np.float32)


def attention_maps(model, input_ids: torch.Tensor) -> tuple[np.ndarray, str]:
    """(Y, L, L) head-averaged attention weights of every layer, and the implementation the model had."""
    with eager_attention(model) as before, torch.inference_mode():
        out = model(input_ids=input_ids, use_cache=False, output_attentions=True)
    return stack_maps(out, model), before


def attention_layers(model, count: int) -> list[int]:
    """The model's layer number of each of the `count` attention maps its forward returned."""
    recorded = (getattr(model, "_can_record_outputs", None) or {}).get("attentions")
    cls = getattr(recorded, "target_class", recorded)  # a class, or an OutputRecorder naming one
    if isinstance(cls, type):
        found = [m for m in model.modules() if isinstance(m, cls)]
        if len(found) == count:
            return layer_index(model, found)
    cfg = getattr(model, "config", None)
    kinds = getattr(cfg, "layers_block_type", None) or getattr(cfg, "layer_types", None) or ()
    from_config = [i for i, k in enumerate(kinds) if "attention" in str(k) and "linear" not in str(k)]
    if len(from_config) != count:
        from_config = list(getattr(cfg, "attn_layer_indices", None) or [])
    return sorted(from_config) if len(from_config) == count else list(range(count))
