"""The inside view's one entry point: a loaded model and a text -> an `Inspection` (backend.inside.data).

    inspect(gen, prompt, output_ids=None, new_tokens=0, max_tokens=None, char_spans=()) -> Inspection

`gen` is what `ModelManager.get(name)` returns. A real model (backend.generation.decode.HFGenerator) exposes its
Hugging Face `model` and `tokenizer`; `hf_parts(gen)` reads them and returns None for the fake backend
(SSM_ARENA_FAKE=1), which has no model to look inside: `inspect` says so in a sentence. The page and the
CLI (`python -m backend inspect`) both call `inspect`.

What it reads, by family (backend.inside.data lists the arrays):
    mamba / mamba2  the mixers' selection readings (backend.inside.ssm), one forward with hooks
    transformer     the attention maps (backend.inside.attention), one eager forward
    hybrid          both from one eager forward with the hooks on: the SSM readings of its Mamba-2 layers
                    (BambaMixer) and the maps of its attention layers, plus which layer of the model each came
                    from ("ssm_layers", "attention_layers"). A hybrid whose SSM layers are another class (Jamba,
                    Zamba2) is refused with a sentence, as is any other family.

The text is the prompt's tokens, then `output_ids` (e.g. an Arena column's generated tokens), or `new_tokens`
generated greedily here first. One forward runs under the generator's lock. Texts longer than `max_tokens`
(default SSM_ARENA_INSPECT_MAX_TOKENS, else 1024) are refused with a sentence: the attention maps are
L x L per layer. `char_spans` [(label, start, end)] are character ranges of the prompt (the planted pass key,
the gold passage) that become token `Span`s.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from backend.generation.interface import GenSettings
from backend.inside import attention, ssm
from backend.inside.data import (
    ENV_MAX_TOKENS,
    OUTPUT_READS,
    InspectError,
    Inspection,
    Span,
    max_tokens_setting,
)

READS = ("mamba", "mamba2", "transformer", "hybrid")  # families the inside view reads


def hf_parts(gen):
    """(Hugging Face model, tokenizer) behind a Generator, or None when there is none (the fake backend)."""
    model, tok = getattr(gen, "model", None), getattr(gen, "tokenizer", None)
    if not isinstance(model, torch.nn.Module) or tok is None:
        return None
    return model, tok


def token_offsets(tokenizer, text: str, ids: list[int]) -> list[tuple[int, int]]:
    """Character range of each token of `text` (fast tokenizers' offsets; else by decoding prefixes)."""
    try:
        enc = tokenizer(text, return_offsets_mapping=True, return_attention_mask=False)
        if list(enc["input_ids"]) == list(ids):
            return [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        pass
    out, prev = [], 0
    for i in range(len(ids)):
        end = len(tokenizer.decode(ids[: i + 1]))
        out.append((prev, end))
        prev = end
    return out


def spans_from_chars(offsets: list[tuple[int, int]], char_spans) -> list[Span]:
    """Tokens overlapping each character range [start, end) become one Span (empty ranges are dropped)."""
    spans = []
    for label, start, end in char_spans:
        hit = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        if hit:
            spans.append(Span(label, hit[0], hit[-1] + 1))
    return spans


def inspect(gen, prompt: str, output_ids: list[int] | None = None, new_tokens: int = 0,
            max_tokens: int | None = None, char_spans=()) -> Inspection:
    """Look inside `gen`'s model on `prompt` (+ output). Raises InspectError with a sentence."""
    info = gen.info
    parts = hf_parts(gen)
    if parts is None:
        raise InspectError(
            f"'{info.name}' is served by the fake backend (SSM_ARENA_FAKE=1, path '{info.path}'): there is no model "
            "to look inside. Unset SSM_ARENA_FAKE and restart the dashboard to inspect the real models.")
    model, tok = parts
    if info.family not in READS or (info.family == "hybrid" and not ssm.mixers(model)):
        raise InspectError(
            f"'{info.name}' is a {info.family} model; the inside view reads Mamba, Mamba-2 and transformer models, "
            f"and hybrids whose SSM layers are Mamba-2 mixers (Bamba), only" + _mixer_note(model, info.family)
            + ". Pick one of those.")
    if not prompt.strip():
        raise InspectError("The prompt is empty. Type some text (or open an Arena column) to look inside.")
    limit = max_tokens or max_tokens_setting()
    prompt_ids = list(tok(prompt, return_attention_mask=False)["input_ids"])
    if output_ids is None and new_tokens > 0:
        if len(prompt_ids) + new_tokens > limit:
            _too_long(info.name, len(prompt_ids) + new_tokens, limit)
        output_ids = gen.generate(prompt, GenSettings(max_new_tokens=int(new_tokens))).token_ids
    ids = prompt_ids + list(output_ids or [])
    if len(ids) > limit:
        _too_long(info.name, len(ids), limit)
    spans = spans_from_chars(token_offsets(tok, prompt, prompt_ids), char_spans)
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    t0 = time.perf_counter()
    with gen.lock:
        n = len(prompt_ids)  # SSM reads at the prompt's end and the first output tokens (each predicts the next)
        ends = tuple(range(n - 1, min(n + OUTPUT_READS, len(ids))))
        mixer_forward = f"{getattr(model, 'arena_path', 'hf-torch')} mixer forward, read by hooks"
        if info.family == "transformer":
            maps, impl = attention.attention_maps(model, input_ids)
            arrays = {"attention": maps}
            forward = f"eager attention (the model runs {impl} otherwise)"
        elif info.family == "hybrid":
            arrays, forward = _hybrid(model, input_ids, ends)
            forward = f"{mixer_forward}; {forward}"
        else:
            arrays, _ = ssm.trace(model, input_ids, ends=ends)
            forward = mixer_forward
    return Inspection(
        model=info.name, family=info.family, tokens=[tok.decode([i]) for i in ids], token_ids=ids,
        n_prompt=len(prompt_ids), arrays=arrays, spans=spans,
        meta={"device": info.device, "dtype": info.dtype, "forward": forward, "placeholder": info.placeholder,
              "seconds": time.perf_counter() - t0, "max_tokens": limit})


def _hybrid(model, input_ids: torch.Tensor, ends: tuple[int, ...]) -> tuple[dict, str]:
    """A hybrid's SSM readings and attention maps from one forward (eager attention, the mixers' hooks on), with
    the model's layer number of each."""
    with attention.eager_attention(model) as impl, ssm.captured(model) as seen, torch.inference_mode():
        out = model(input_ids=input_ids, use_cache=False, output_attentions=True)
        arrays, _ = ssm.read(model, seen, input_ids.shape[1], ends)
    arrays["attention"] = attention.stack_maps(out, model)
    arrays["ssm_layers"] = np.array(ssm.layer_index(model, ssm.mixers(model)), dtype=np.int64)
    arrays["attention_layers"] = np.array(attention.attention_layers(model, len(arrays["attention"])), np.int64)
    return arrays, f"eager attention (the model runs {impl} otherwise)"


def _mixer_note(model, family: str) -> str:
    """For a hybrid we cannot read: the classes of its SSM layers."""
    if family != "hybrid":
        return ""
    names = sorted({type(m).__name__ for m in model.modules() if "Mamba" in type(m).__name__
                    and type(m).__name__.endswith(("Mixer", "Layer"))})
    return f" (its SSM layers are {', '.join(names)})" if names else " (no SSM layer found in it)"


def _too_long(name: str, n: int, limit: int) -> None:
    raise InspectError(
        f"The text is {n} tokens for '{name}', over the inside view's limit of {limit} (the attention maps grow "
        f"with the square of the length). Shorten the prompt, or raise the limit (the page's setting, --max-tokens "
        f"or {ENV_MAX_TOKENS}).")
