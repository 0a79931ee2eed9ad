"""Explainer: S4 -> Mamba -> Mamba-2 in short text, with live demonstrations on the loaded models, each checked
numerically on the page (the three SSD forms agree; cache bytes come from the models' own decode loops; the
selection mechanism recovers a marked token that a fixed step size loses). The demonstrations run in
backend.inside (batch.ssd_explainer, toys); this page lays them out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.generation.compare import error_sentence
from backend.inside import batch, data, toys
from backend.inside.instances import InstanceText
from backend.models import registry
from backend.toyworld import example_prompts
from pages.components.charts import context_lines, series_colors, token_figure
from pages.components.resources import generator_getter, get_manager

KEEP = {"persist_state": "session"}
specs = registry.list_specs()
names = [s.name for s in specs]
mamba2 = [s.name for s in specs if s.family in ("mamba2", "hybrid")]  # a hybrid: its Mamba-2 layers
WORDS = " ".join(example_prompts() * 4).split()


def run_ssd(model: str | None, layer: int, lengths: list[int]) -> None:
    try:
        gen = None if model is None or get_manager().fake else generator_getter()(model)
        text = toys.prompt_of(gen, WORDS, max(lengths)) if gen is not None else ""
        st.session_state["explain_ssd"] = batch.ssd_explainer(gen, text, layer, lengths)
    except Exception as e:  # sentences from the registry and the inside view
        st.session_state["explain_ssd"] = {"error": error_sentence(e)}


def run_cache(models: list[str], lengths: list[int]) -> None:
    get = generator_getter()
    try:
        st.session_state["explain_cache"] = toys.cache_growth({m: get(m) for m in models}, lengths, " ".join(WORDS))
    except Exception as e:
        st.session_state["explain_cache"] = error_sentence(e)


st.title("Explainer: from S4 to Mamba-2, on the loaded models")
st.markdown("""
**State space models.** An SSM keeps a hidden state *h* of fixed size and updates it once per token:
*h_t = Ā h_(t-1) + B̄ x_t*, *y_t = C h_t*. The bars are the discretised matrices: a continuous system sampled
with a step size Δ (zero-order hold: *Ā = exp(ΔA)*). **S4** made this work for long sequences with a
structured *A* (HiPPO initialisation, later simply diagonal in S4D) and one more trick: while *A, B, C, Δ* are
the same for every token, the whole recurrence unrolls into one long convolution, trained in parallel with
FFTs, while generation still runs the cheap recurrence: a fixed-size state, whatever the length.

**Selection.** A time-invariant SSM treats *the* and *Paris* alike, so it cannot decide what is worth keeping.
H3 paired SSMs with multiplicative gates to recall tokens; **Mamba** made the SSM itself selective: Δ, *B* and
*C* are computed from the current token. Δ works as a gate: a large Δ decays the old state and writes this
token in (reset and focus), a small Δ leaves the state almost untouched (keep and ignore). The price is the
convolution: with input-dependent parameters only the recurrence remains, so Mamba computes it with a
hardware-aware parallel scan that never writes the expanded state to GPU memory.

**Duality.** **Mamba-2** restricts *A* to one scalar per head. Then unrolling the recurrence gives
*y = (M ∘ C Bᵀ) x̄* with a lower-triangular mask *M[t, s]* = the product of the decays between *s* and *t*:
a masked attention without softmax (state space duality, SSD). The same layer can be computed token by token
(linear time), as that quadratic matrix (parallel, attention-like), or in chunks: quadratic inside a chunk,
recurrent across chunks, which is how it trains fast on matrix units. **Hybrids** (Jamba, Zamba) keep most
layers Mamba and add a few attention layers for exact recall, which a fixed-size state has to compress.
""")

st.header("1. One Mamba-2 layer, three ways")
c1, c2, c3 = st.columns(3)
model = c1.selectbox("Mamba-2 model (or hybrid)", mamba2 or ["(none registered)"], key="explain_model", **KEEP)
layer = c2.number_input("Mamba-2 layer", 0, 63, 0, key="explain_layer", help="A hybrid's layers are counted among "
                        "its Mamba-2 layers only; the caption says which layer of the model it is.", **KEEP)
top = c3.selectbox("Longest length (tokens)", [128, 256, 512, 1024], index=1, key="explain_top", **KEEP)
lengths = [n for n in (16, 32, 64, 128, 256, 512, 1024) if n <= top]
if st.button("Compute the layer three ways", key="explain_ssd_run"):
    with st.spinner("Running the layer ..."):
        run_ssd(model if mamba2 else None, int(layer), lengths)
ssd = st.session_state.get("explain_ssd")
if ssd and "error" in ssd:
    st.error(ssd["error"])
elif ssd:
    st.caption(f"Inputs: {ssd['source']} ({ssd['length']} tokens).")
    agree = ssd["agreement"]
    st.table(pd.DataFrame({"max relative difference to the recurrence": {
        "chunked SSD: outputs": f"{agree['chunked']:.1e}", "chunked SSD: final state": f"{agree['chunked state']:.1e}",
        "quadratic masked attention: outputs": f"{agree['quadratic']:.1e}",
        "quadratic masked attention: final state": f"{agree['quadratic state']:.1e}",
        **({"chunked SSD + D x + gated norm vs the layer's own output": f"{ssd['model_check']:.1e}"}
           if "model_check" in ssd else {})}}))
    ok = max(agree.values()) < 1e-4
    (st.success if ok else st.warning)(
        "The three forms agree within float32 rounding." if ok else "The forms disagree beyond float32 rounding.")
    t = pd.DataFrame(ssd["timings"]).rename(columns={"length": "prompt_tokens", "form": "series"})
    st.plotly_chart(context_lines(t, "ms", "Time of each form against length (median, this machine)",
                                  series_colors(t["series"].unique())), key="explain_ssd_time")
    st.caption("The recurrence grows linearly but runs one token at a time; the quadratic form grows with the "
               "square of the length; the chunked form keeps matrix products and linear growth. CPU timings "
               "show Python overheads as much as arithmetic.")

st.header("2. Recurrent state vs KV cache as the prompt grows")
cache_models = st.multiselect("Models", names, default=[n for n in ("toy-mamba", "toy-mamba2", "toy-transformer")
                                                        if n in names], key="explain_cache_models", **KEEP)
if st.button("Measure the caches", key="explain_cache_run"):
    with st.spinner("One token after prompts of 16 to 512 tokens, per model ..."):
        run_cache(cache_models, [16, 64, 256, 512])
cache = st.session_state.get("explain_cache")
if isinstance(cache, str):
    st.error(cache)
elif cache:
    c = pd.DataFrame(cache).assign(series=lambda d: d["model"] + " (" + d["cache_kind"] + ")",
                                   cache_kib=lambda d: d["cache_bytes"] / 1024)
    st.plotly_chart(context_lines(c, "cache_kib", "Cache after the prompt and one new token (KiB)",
                                  series_colors(c["series"].unique())), key="explain_cache_fig")
    st.dataframe(c[["model", "family", "prompt_tokens", "cache_bytes", "cache_kind", "path"]], hide_index=True)
    st.caption("Bytes as each model's decode loop reports them (conv + SSM state, or K and V of every layer). "
               "A flat line is a fixed-size state; a rising one grows with every token."
               + (" Fake backend: these are its formulas, not real tensors." if get_manager().fake else ""))

st.header("3. What selection does")
st.markdown("One channel, *h_t = (1 - g_t) h_(t-1) + g_t x_t* with *g_t = 1 - exp(-Δ_t)*: the gated form of the "
            "Mamba paper's Theorem 1. The input is noise with one marked token; at the end the state should hold "
            "its value. A selective Δ is large on the marked token and tiny elsewhere; a fixed Δ (time-invariant, "
            "as in S4) must trade writing against forgetting.")
mem = pd.DataFrame(toys.selective_memory())
st.line_chart(mem.pivot(index="distance", columns="method", values="error"), x_label="distance of the marked "
              "token from the end (tokens)", y_label="mean |state - marked value|")
worst = mem.groupby("method")["error"].max()
st.caption("Largest mean error over distances: " + "; ".join(f"{m}: {v:.3f}" for m, v in worst.items()) + ".")
ssms = [s.name for s in specs if s.family in ("mamba", "mamba2", "hybrid")]  # a hybrid: its Mamba-2 layers' Δ
text, spans = toys.selective_copy_text()
st.markdown("On a loaded SSM, a selective-copying input (digits among dots): does Δ rise on the digits?")
st.code(text, language=None)
pick = st.selectbox("SSM", ssms, key="explain_sel_model", **KEEP)
if st.button("Read Δ on the digits", key="explain_sel_run") and pick:
    with st.spinner(f"Reading {pick} ..."):
        st.session_state["explain_sel"] = batch.inspect_models(generator_getter(), [pick],
                                                               InstanceText("selective copy", text, "", spans))[0]
sel = st.session_state.get("explain_sel")
if sel is not None and sel.error:
    st.warning(sel.error)
elif sel is not None:
    insp = sel.inspection
    d = insp.arrays["delta"][:, :insp.n_prompt]
    digit = sorted({t for sp in insp.spans for t in range(sp.start, sp.end)})
    dots = [i for i, tok in enumerate(insp.tokens) if tok.strip() == "."]
    st.metric("mean Δ on the digits / on the dots", f"{d[:, digit].mean() / max(d[:, dots].mean(), 1e-12):.2f}x")
    st.plotly_chart(token_figure(data.layer_frame(insp, "delta"), "value", [(s.label, s.start, s.end) for s in insp.spans],
                                 f"{insp.model}: mean step size Δ per layer", heat=True), key="explain_sel_fig")
    st.caption(f"{len(digit)} digit tokens, {len(dots)} dot tokens; recurrence check {insp.arrays['check'].max():.1e}. "
               "The model was not trained on this task: this shows where its Δ rises, not that it copies.")
