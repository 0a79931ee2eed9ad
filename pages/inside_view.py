"""Inside view: what each model keeps from the prompt, side by side (an SSM's state, a transformer's attention).

A hybrid (Bamba) shows both: its Mamba layers' state readings and its attention layers' maps, each layer named by
its place in the model. Opened from an Arena column (its model, prompt and generated tokens) or an experiment
instance, or used on its own with your text, a pass-key instance or a RAG instance (the planted key / gold passage highlighted). The
numbers come from backend.inside (hooks on the loaded models, `python -m backend inspect` runs the same code);
this page only lays them out.
"""

from __future__ import annotations

import streamlit as st

from backend.generation.compare import error_sentence
from backend.inside import batch, data
from backend.models import registry
from pages.components import inside as ui
from pages.components.charts import token_figure
from pages.components.resources import generator_getter, get_manager, get_store

SOURCES = ["Your text", "Pass-key instance", "RAG instance", "Experiment instance"]
DEFAULT_MODELS = ["toy-mamba", "toy-mamba2", "toy-transformer"]
RESULTS = "inside_results"
KEEP = {"persist_state": "session"}


def apply_request(req: dict, names: list[str]) -> None:
    """Fill the widgets from an Arena / experiment button (before they are drawn)."""
    s = st.session_state
    s["inside_models"] = [m for m in req.get("models", []) if m in names]
    if "run_id" in req:
        s["inside_source"] = "Experiment instance"
        s["inside_instance"] = {"run_id": req["run_id"], "instance_id": req["instance_id"]}
    else:
        s["inside_source"] = "Your text"
        s["inside_prompt"] = req.get("prompt", "")
    s["inside_outputs"] = (req.get("prompt"), req.get("outputs") or {})
    s["inside_origin"] = req.get("origin", "")


def build_text(source: str, get, names: list[str]):
    s = st.session_state
    if source == "Experiment instance":
        ref = s.get("inside_instance") or {}
        runs = get_store().runs()
        row = runs[runs["run_id"] == ref.get("run_id")]
        if row.empty:
            raise data.InspectError("That experiment run is no longer in the store. Open an instance again from "
                                    "an experiment page.")
        # the plan is rebuilt with the run's first model's tokenizer, as it ran
        return batch.run_instance(row.iloc[0]["config"], ref["instance_id"], get_generator=get)
    count = get(names[0]).count_tokens
    if source == "Pass-key instance":
        return batch.source_text(passkey=(s["inside_length"], s["inside_depth"]), seed=s["inside_seed"],
                                 query=s["inside_query"], count_tokens=count)
    if source == "RAG instance":
        return batch.source_text(rag_k=s["inside_k"], seed=s["inside_seed"], query=s["inside_query"],
                                 count_tokens=count)
    return batch.source_text(prompt=s.get("inside_prompt") or "")


def run(source: str, names: list[str], new_tokens: int, max_tokens: int) -> None:
    if not names:
        st.session_state[RESULTS] = ("Pick at least one model above.", None, [])
        return
    get = generator_getter()
    try:
        with st.spinner("Loading the models and building the text ..."):
            text = build_text(source, get, names)
    except Exception as e:  # sentences from the registry, the experiments and the store
        st.session_state[RESULTS] = (error_sentence(e), None, [])
        return
    prompt, outputs = st.session_state.get("inside_outputs") or (None, {})
    with st.spinner(f"Reading {', '.join(names)} on {text.id} ..."):
        outcomes = batch.inspect_models(get, names, text, new_tokens=new_tokens, max_tokens=max_tokens,
                                        outputs=outputs if prompt == text.prompt else None)
    st.session_state[RESULTS] = (None, text, outcomes)


st.title("Inside view")
st.caption("What each model keeps from the prompt: a Mamba model decides at every token how much to write into its "
           "fixed-size state (step size Δ: large = overwrite with this token, small = keep the past), so a token "
           "survives as the product of the decays after it; a transformer can look back at any token, and its "
           "attention shows where it looks. Both on the same token axis, from the loaded models (hooks on their "
           "Hugging Face modules).")
names = [s.name for s in registry.list_specs()]
request = ui.take_request()
if request:
    apply_request(request, names)
if get_manager().fake:
    st.info("The fake backend is in use (SSM_ARENA_FAKE=1): its models have no weights, so there is nothing to look "
            "inside. Unset SSM_ARENA_FAKE and restart the dashboard to inspect real models.")

options = SOURCES if st.session_state.get("inside_instance") else SOURCES[:3]
source = st.radio("Text", options, horizontal=True, key="inside_source", **KEEP)
c1, c2, c3, c4 = st.columns(4)
if source == "Your text":
    st.text_area("Prompt", key="inside_prompt", height=100, placeholder="Type a prompt, or open an Arena column.", **KEEP)
elif source == "Pass-key instance":
    c1.number_input("Length (tokens)", 32, 8192, 512, 32, key="inside_length", **KEEP)
    c2.slider("Depth of the key", 0.0, 1.0, 0.5, 0.25, key="inside_depth", **KEEP)
elif source == "RAG instance":
    c1.number_input("Passages k", 1, 16, 3, key="inside_k", **KEEP)
    c2.caption("Retrieval runs once per seed (a few seconds: the embedder loads).")
else:
    ref = st.session_state["inside_instance"]
    st.caption(f"Instance {ref['instance_id']} of run {ref['run_id'][:8]} (its prompt rebuilt from the run's plan).")
if source in ("Pass-key instance", "RAG instance"):
    c3.number_input("Seed", 0, 2**31 - 1, 0, key="inside_seed", **KEEP)
    c4.number_input("Instance", 0, 999, 0, key="inside_query", **KEEP)
default = [] if "inside_models" in st.session_state else [m for m in DEFAULT_MODELS if m in names]
models = st.multiselect("Models", names, default=default, key="inside_models", **KEEP)
c1, c2, _ = st.columns([1, 1, 2])
new_tokens = c1.number_input("Also generate (tokens, greedy)", 0, 256, 0, key="inside_new", **KEEP,
                             help="0: the prompt only (or the Arena's outputs when opened from a column).")
try:
    limit_default = data.max_tokens_setting()
except data.InspectError as e:
    st.warning(str(e))
    limit_default = data.DEFAULT_MAX_TOKENS
max_tokens = c2.number_input("Refuse texts longer than (tokens)", 8, 16384, limit_default, key="inside_max", **KEEP,
                             help="Attention maps grow with the square of the length.")
kind = {"Pass-key instance": "passkey", "RAG instance": "rag"}.get(source)
s = st.session_state
with st.expander("Equivalent command"):
    st.code(batch.cli_command(
        models, prompt=s.get("inside_prompt"), seed=s.get("inside_seed", 0), query=s.get("inside_query", 0),
        passkey=(s["inside_length"], s["inside_depth"]) if kind == "passkey" else None,
        rag_k=s["inside_k"] if kind == "rag" else None, new_tokens=int(new_tokens), max_tokens=int(max_tokens),
        run=(s["inside_instance"]["run_id"], s["inside_instance"]["instance_id"]) if source == SOURCES[3] else None),
        language="bash", wrap_lines=True)
clicked = st.button("Look inside", type="primary", key="inside_run")
if clicked:  # the user's own run: no longer the text a button opened the page with
    st.session_state.pop("inside_origin", None)
if clicked or request:
    run(source, models, int(new_tokens), int(max_tokens))

problem, text, outcomes = st.session_state.get(RESULTS) or (None, None, [])
if problem:
    st.error(problem)
if text is None:
    st.stop()
if origin := st.session_state.get("inside_origin"):
    st.caption(f"Opened from {origin}.")
if text.id != "prompt":
    st.text(f"Instance {text.id} · reference answer: {text.reference}")
if text.note:
    st.caption(text.note)
with st.expander(f"Text ({len(text.prompt):,} characters)"):
    st.code(text.prompt, language=None, wrap_lines=True)
for o in outcomes:
    if o.error:
        st.warning(f"{o.model}: {o.error}")
insps = [o.inspection for o in outcomes if o.inspection is not None]
if not insps:
    st.stop()

outputs = max(len(i.tokens) - i.n_prompt for i in insps)
points = [0, *range(1, min(outputs, data.OUTPUT_READS) + 1), "end"] if outputs else [0]
at = st.selectbox("Read at", points, key="inside_at", format_func=lambda a: (
    "the end of the prompt (its output is the first output token)" if a == 0 else "the end of the text"
    if a == "end" else f"output token {a} (its output is output token {a + 1})"))
query = None
transformers = [i for i in insps if i.has_attention]  # transformers and hybrids' attention layers
if transformers and st.toggle("Attention layers: attention paid by another token", key="inside_pick"):
    longest = max(len(i.tokens) for i in transformers)
    query = st.slider("Token", 0, longest - 1, transformers[0].position(at), key="inside_query_pos")
ssm_view = st.radio("SSM line", ["retained", "weight"], horizontal=True, key="inside_ssm_view", **KEEP,
                    format_func=lambda v: {"retained": "retained in the state (product of the decays since the token)",
                                           "weight": "implicit attention (how much the token's input enters the "
                                                     "output there)"}[v])
spans = [(sp.label, sp.start, sp.end) for sp in insps[0].spans]
st.plotly_chart(token_figure(data.kept_frame(insps, at, query, ssm_view), "kept", spans,
                             "What each model keeps of each token (mean over layers)"), key="inside_kept")
st.caption("SSM retained: the share of a token still in the state (exp(A·ΣΔ) since the token, mean over channels / "
           "heads). SSM implicit attention: |C_q·exp(A·ΣΔ)·B_t·Δ_t| summed over channels / heads and normalised "
           "to 1, the unrolled recurrence read like attention. Attention layers (a transformer's, a hybrid's): attention "
           "from that token (mean over heads); it sums to 1. A hybrid has a line for each kind of layer.")
if spans:
    st.dataframe(data.spans_table(insps, at).round(4), hide_index=True, key="inside_spans")
    st.caption("At the reading point above. weight: attention mass on the span (transformer) or the same share of "
               "the SSM's implicit attention, mean over layers (max: the top layer); uniform: what equal attention "
               "to every token would give. retained: SSM share of the span still in the state, next to the mean "
               "over all earlier tokens; delta_ratio: mean Δ on the span / on the prompt.")
for tab, insp in zip(st.tabs([i.model for i in insps]), insps, strict=True):
    with tab:
        pos = insp.position(at)
        ui.model_panel(insp, pos, key=f"inside_panel_{insp.model}",
                       attention_query=pos if query is None else min(query, len(insp.tokens) - 1))
