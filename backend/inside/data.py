"""What the inside view computes, as plain arrays: the `Inspection` record, its .npz file, the numbers the
pages plot, the length limit and the error type. numpy and pandas only (no torch): the pages import it.

Shape glossary (one inspected text, batch 1):
    L   tokens inspected (prompt, then the generated output if any); positions 0 .. L-1
    Y   layers read (mixer layers for Mamba / Mamba-2, attention layers for a transformer; a hybrid has both,
        Y counting each kind in its own arrays)

Arrays of an SSM inspection (`family` "mamba" or "mamba2"), all float32 (Y, L):
    delta       mean step size Δ over the layer's channels (Mamba-1) or heads (Mamba-2): large Δ = this token
                overwrites the state, small Δ = the state keeps the past (Mamba paper Section 3.5.2)
    state_norm  Frobenius norm of the layer's state h_t after token t
    change      ||h_t - h_{t-1}|| / ||h_t||: how much of the state token t rewrote
    retained    how much of token t is still in the state at the end of the text: the product of the decays
                exp(Δ_s A) over s = t+1 .. L-1, averaged over channels and state entries (Mamba-1) or heads
                (Mamba-2, whose scalar decay per head makes this exact); 1 for the last token
    retained@q  the same at position q (the end of the prompt and the first output tokens, when an output follows:
                position n_prompt - 1 + k predicts output token k + 1); NaN after q
    weight      the SSM's implicit attention row of the last position: |M[L-1, t]|, the weight with which token
                t's input enters that output (M[q, t] = C_q . exp(A (Δ_t+1 + ... + Δ_q)) B_t Δ_t: the unrolled
                recurrence, Mamba-2 paper Sections 4-5), summed over channels / heads and normalised to sum 1 over
                t, so it reads like attention (the skip term D x_q is left out); `weight@q` at position q
    check       (Y,) max |y_recomputed - y_model| / max |y_model|: the recurrence the view reads, checked
                against the layer's own output captured by the hooks
Arrays of a transformer inspection:
    attention   float32 (Y, L, L): softmax attention averaged over heads; row q is what position q attends to
                (rows sum to 1, zero above the diagonal)
Arrays of a hybrid inspection (`family` "hybrid", e.g. Bamba: Mamba-2 layers and a few attention layers): the SSM
arrays above over its Mamba layers and `attention` over its attention layers, on the same token axis, plus
    ssm_layers        int64 (Y_ssm,)  the model's layer number of each row of the SSM arrays
    attention_layers  int64 (Y_attn,) the model's layer number of each map of `attention`
The other families read every layer, so their rows are layers 0 .. Y-1 and these two arrays are absent (as in
files written before hybrids were read): `Inspection.layers` fills them in.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backend.generation.interface import GenerationError

DEFAULT_MAX_TOKENS = 1024
ENV_MAX_TOKENS = "SSM_ARENA_INSPECT_MAX_TOKENS"
OUTPUT_READS = 4  # SSM retained / weight rows are kept at the prompt's end, the first 4 output tokens and the end
SSM_ARRAYS = ("delta", "state_norm", "change", "retained", "weight")
QUANTITY_LABELS = {"delta": "mean step size Δ", "state_norm": "state norm ||h_t||",
                   "change": "share of the state rewritten by the token", "retained": "retained in the state",
                   "weight": "implicit attention |M[q, t]|"}


class InspectError(GenerationError):
    """The inside view cannot run on this model or text; the message says what to do."""


def max_tokens_setting() -> int:
    """The longest text the inside view reads: SSM_ARENA_INSPECT_MAX_TOKENS, else 1024 (attention maps are L x L)."""
    raw = os.environ.get(ENV_MAX_TOKENS, "").strip()
    try:
        return max(2, int(raw)) if raw else DEFAULT_MAX_TOKENS
    except ValueError:
        raise InspectError(f"{ENV_MAX_TOKENS} must be a whole number of tokens, got {raw!r}. Fix or unset it.") from None


@dataclass
class Span:
    """Tokens start .. end-1 of the inspected text, with what they are ("pass key", "gold passage")."""

    label: str
    start: int
    end: int


@dataclass
class Inspection:
    model: str
    family: str  # mamba | mamba2 | transformer | hybrid
    tokens: list[str]  # each token decoded on its own
    token_ids: list[int]
    n_prompt: int  # tokens 0 .. n_prompt-1 are the prompt, the rest the model's output
    arrays: dict[str, np.ndarray]
    spans: list[Span] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # device, dtype, forward path, placeholder, seconds, ...

    @property
    def is_ssm(self) -> bool:
        """A pure SSM (every layer a mixer); a hybrid is not, though it `has_ssm`."""
        return self.family in ("mamba", "mamba2")

    @property
    def has_ssm(self) -> bool:
        return "delta" in self.arrays

    @property
    def has_attention(self) -> bool:
        return "attention" in self.arrays

    def layers(self, kind: str) -> np.ndarray:
        """The model's layer number of each row of the `kind` ("ssm" or "attention") arrays; empty without them."""
        if f"{kind}_layers" in self.arrays:
            return self.arrays[f"{kind}_layers"].astype(int)
        rows = self.arrays.get("delta" if kind == "ssm" else "attention")
        return np.arange(0 if rows is None else rows.shape[0])

    @property
    def n_layers(self) -> int:
        """Layers read: all of them for a pure model, the Mamba and the attention layers of a hybrid."""
        return len(set(self.layers("ssm").tolist()) | set(self.layers("attention").tolist()))

    def position(self, at: int | str = 0) -> int:
        """Token index of a reading point: `at` k = n_prompt - 1 + k (0: the end of the prompt, whose output
        predicts the first output token; k: output token k), "end" = the last token."""
        return len(self.tokens) - 1 if at == "end" else min(self.n_prompt - 1 + int(at), len(self.tokens) - 1)

    def references(self) -> list[int]:
        """Positions an SSM's retained shares were computed at: the end of the prompt and of the text."""
        return sorted({len(self.tokens) - 1, *(int(k.split("@")[1]) for k in self.arrays if k.startswith("retained@"))})

    def retained_at(self, q: int, name: str = "retained") -> np.ndarray:
        """(Y, L) an SSM's retained shares (or `name` "weight": its implicit attention) at position q (NaN after q);
        q must be one of `references()`."""
        found = self.arrays[name] if q == len(self.tokens) - 1 else self.arrays.get(f"{name}@{q}")
        if found is None:
            raise ValueError(f"The {name} arrays of {self.model} exist at positions {self.references()}, not {q}.")
        return found

    def kept(self, query: int | None = None, ssm: str = "retained", part: str | None = None) -> np.ndarray:
        """(L,) what the model keeps of each token at position `query` (default: the last), averaged over layers.
        SSM layers (`part` "ssm", the default where there are any): the share still in the state (`ssm`
        "retained") or its implicit attention ("weight"). Attention layers ("attention"): the attention that
        position pays."""
        q = len(self.tokens) - 1 if query is None else int(query)
        if (part or ("ssm" if self.has_ssm else "attention")) == "ssm":
            return self.retained_at(q, ssm).mean(axis=0)
        return self.arrays["attention"][:, q, :].mean(axis=0)


def _write(insp: Inspection, target) -> None:
    record = {k: v for k, v in asdict(insp).items() if k != "arrays"}
    np.savez_compressed(target, record=np.array(json.dumps(record)), **insp.arrays)


def save(insp: Inspection, path: str | Path) -> Path:
    """A compressed .npz: the arrays under their names, everything else as JSON in `record`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(insp, path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def npz_bytes(insp: Inspection) -> bytes:
    """The same .npz as `save`, in memory (the page's download button)."""
    buf = io.BytesIO()
    _write(insp, buf)
    return buf.getvalue()


def load(path: str | Path) -> Inspection:
    with np.load(path) as f:
        record = json.loads(str(f["record"]))
        arrays = {k: f[k] for k in f.files if k != "record"}
    record["spans"] = [Span(**s) for s in record.get("spans", [])]
    return Inspection(arrays=arrays, **record)


# ------------------------------------------------------------------------------------- what pages plot
def token_labels(tokens: list[str]) -> list[str]:
    """Readable tick labels: newlines as ⏎, leading spaces dropped, empty pieces as ·."""
    out = []
    for t in tokens:
        s = t.replace("\n", "⏎").replace("\t", "⇥").strip()
        out.append(s[:12] if s else "·")
    return out


def span_stats(insp: Inspection, span: Span, query: int | None = None) -> dict:
    """What the model keeps of the span's tokens at position `query` (default: the last), averaged over layers.

    weight: attention mass on the span (attention layers) or the same share of the SSM's implicit attention row
    (`weight`, Mamba layers), a hybrid's both kinds of layers together; uniform: the mass a uniform attention over tokens 0..query would put there. SSMs also: retained,
    the mean retained share of the span's tokens, next to retained_all, the same over every token before the
    position; delta_ratio, mean Δ on the span / mean Δ on the prompt."""
    q = len(insp.tokens) - 1 if query is None else int(query)
    s, e = span.start, min(span.end, q + 1)
    out = {"model": insp.model, "family": insp.family, "span": span.label, "tokens": e - s, "position": q,
           "weight": float("nan"), "uniform": (e - s) / (q + 1), "weight_max_layer": float("nan"),
           "retained": float("nan"), "retained_all": float("nan"), "delta_ratio": float("nan")}
    if e <= s:
        return out
    rows = []
    if insp.has_ssm:
        r, d = insp.retained_at(q), insp.arrays["delta"]
        rows.append(insp.retained_at(q, "weight"))
        out.update(retained=float(r[:, s:e].mean()), retained_all=float(r[:, :q].mean()),
                   delta_ratio=float(d[:, s:e].mean() / max(d[:, :insp.n_prompt].mean(), 1e-12)))
    if insp.has_attention:
        rows.append(insp.arrays["attention"][:, q, :])
    mass = np.concatenate(rows)[:, s:e].sum(axis=1)  # (Y,)
    out.update(weight=float(mass.mean()), weight_max_layer=float(mass.max()))
    return out


def spans_table(inspections: list[Inspection], at: int | str = 0) -> pd.DataFrame:
    """One row per (model, span) at reading point `at` (Inspection.position; default the end of the prompt): the
    pages' and the CLI's summary of highlighted spans."""
    rows = [span_stats(i, sp, i.position(at)) for i in inspections for sp in i.spans]
    cols = ["model", "family", "span", "tokens", "position", "weight", "uniform", "weight_max_layer", "retained",
            "retained_all", "delta_ratio"]
    return pd.DataFrame(rows, columns=cols)


def summary_line(insp: Inspection, at: int | str = 0) -> str:
    """One line for the CLI: what ran, what the model keeps of the first and last tokens, and of each highlighted
    span at reading point `at` (Inspection.position: 0 = the end of the prompt)."""
    n, k = len(insp.tokens), min(8, len(insp.tokens))
    kept = insp.kept()
    head = (f"{insp.model} ({insp.family}, {insp.n_layers} layers, {n} tokens, {insp.meta.get('forward', '?')}, "
            f"{insp.meta.get('seconds', float('nan')):.2f} s)")
    parts = []
    if insp.has_ssm:
        parts.append(f"mean Δ {insp.arrays['delta'].mean():.4f}; retained at the end: first {k} tokens "
                     f"{kept[:k].mean():.3g}, last {k} {kept[-k:].mean():.3g}; recurrence vs layer output max rel. "
                     f"error {float(insp.arrays['check'].max()):.1e}")
    if insp.has_attention:
        rows, att = insp.arrays["attention"].sum(axis=-1), insp.kept(part="attention")
        parts.append(f"attention of the last position: first {k} tokens {att[:k].sum():.3g}, last {k} "
                     f"{att[-k:].sum():.3g}; rows sum to 1 within {float(np.abs(rows - 1).max()):.1e}")
    if insp.has_ssm and insp.has_attention:
        parts = [f"{what} layers {_numbers(insp.layers(kind))}: {p}"
                 for (what, kind), p in zip((("Mamba", "ssm"), ("attention", "attention")), parts, strict=True)]
    body = "; ".join(parts)
    spans = "; ".join(f"{r['span']} ({r['tokens']} tokens) at token {r['position']}: weight {r['weight']:.3g} (uniform {r['uniform']:.3g})"
                      + (f", retained {r['retained']:.3g} (all earlier {r['retained_all']:.3g})" if insp.has_ssm else "")
                      for _, r in spans_table([insp], at).iterrows())
    return f"{head}: {body}" + (f"; {spans}" if spans else "")


def _numbers(layers: np.ndarray) -> str:
    return ", ".join(str(int(y)) for y in layers)


def kept_frame(inspections: list[Inspection], at: int | str = 0, query: int | None = None,
               ssm: str = "retained") -> pd.DataFrame:
    """Long table (row, position, token, kept) of what each model keeps of each token at reading point `at`
    (Inspection.position), averaged over layers; attention layers are read at token `query` instead when given;
    SSM layers show `ssm` ("retained" or "weight"). `row` names the model, what and where; a hybrid has one row
    for its Mamba layers and one for its attention layers."""
    frames = []
    for insp in inspections:
        hybrid = insp.has_ssm and insp.has_attention
        for part in [p for p, has in (("ssm", insp.has_ssm), ("attention", insp.has_attention)) if has]:
            q = insp.position(at) if query is None or part == "ssm" else min(int(query), len(insp.tokens) - 1)
            what = ("retained in the state" if ssm == "retained" else "implicit attention") if part == "ssm" \
                else "attention"
            where = f" ({'Mamba' if part == 'ssm' else 'attention'} layers)" if hybrid else ""
            frames.append(pd.DataFrame({"row": f"{insp.model}: {what} at token {q}{where}",
                                        "position": range(len(insp.tokens)), "token": token_labels(insp.tokens),
                                        "kept": insp.kept(q, ssm, part)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["row", "position", "token", "kept"])


def layer_frame(insp: Inspection, quantity: str, query: int | None = None) -> pd.DataFrame:
    """Long table (row = layer, position, token, value) of one quantity per layer and token: an SSM array
    (delta, state_norm, change, retained, weight) or "attention", the attention paid by position `query` (a pure
    transformer shows attention whatever the quantity). Rows are named by the model's layer number (a hybrid's
    Mamba layers and attention layers keep their places in the model)."""
    q = len(insp.tokens) - 1 if query is None else int(query)
    if quantity == "attention" or not insp.has_ssm:
        z, layers = insp.arrays["attention"][:, q, :], insp.layers("attention")
    else:
        z = insp.retained_at(q, quantity) if quantity in ("retained", "weight") else insp.arrays[quantity]
        layers = insp.layers("ssm")
    Y, L = z.shape
    return pd.DataFrame({"row": np.repeat([f"layer {y}" for y in layers], L), "position": np.tile(np.arange(L), Y),
                         "token": np.tile(token_labels(insp.tokens), Y), "value": z.reshape(-1)})
