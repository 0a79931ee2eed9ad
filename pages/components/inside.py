"""The doors into the Inside view (pages/inside_view.py) and its per-model panels.

    arena_buttons(job)                         under the Arena's columns: "Inside view" per finished column
    experiment_button(run_id, instance_id, models)  beside an experiment instance shown side by side
    take_request() -> dict | None              the page reads (once) what the button asked for
    model_panel(insp, query, key, attention_query)  one model's layer x token heatmap(s) with how they were
                                               computed (a hybrid: its Mamba layers' and its attention layers')

A button leaves a request in `st.session_state[REQUEST]` and switches page; the Inside view fills its
widgets from it and runs. Nothing here imports torch (the computation is backend.inside, behind the page).
"""

from __future__ import annotations

import streamlit as st

from backend.inside import data
from pages.components.charts import token_figure

REQUEST = "inside_request"
PAGE = "pages/inside_view.py"


def open_inside_view(request: dict) -> None:
    st.session_state[REQUEST] = request
    st.switch_page(PAGE)


def take_request() -> dict | None:
    return st.session_state.pop(REQUEST, None)


def arena_buttons(job) -> None:
    """One "Inside view" button under each finished Arena column: opens the view on that column's model (then
    the other columns' models) with the prompt and each model's generated tokens."""
    done = [s for s in job.slots if getattr(s, "result", None) is not None]
    if not done:
        return
    outputs = {s.model: list(s.result.token_ids) for s in done}
    for i, (col, s) in enumerate(zip(st.columns(len(job.slots)), job.slots, strict=True)):
        if s.model in outputs and col.button("Inside view", key=f"inside_open_{i}_{s.model}",
                                             help=f"What {s.model} keeps from this prompt, next to the other columns"):
            order = [s.model] + [m for m in outputs if m != s.model]
            open_inside_view({"models": order, "prompt": s.prompt, "outputs": outputs,
                              "origin": f"Arena column {s.label}"})


def experiment_button(run_id: str, instance_id: str, models: list[str]) -> None:
    if st.button("Inside view of this instance", key=f"inside_open_{run_id}_{instance_id}",
                 help="What each model keeps from this prompt (the pass key / gold passage highlighted)"):
        open_inside_view({"models": list(models), "run_id": run_id, "instance_id": instance_id,
                          "origin": f"instance {instance_id} of run {run_id[:8]}"})


SSM_QUANTITIES = ["delta", "retained", "weight", "change", "state_norm"]


def model_panel(insp: data.Inspection, query: int, key: str, attention_query: int | None = None) -> None:
    """One model: layer x token heatmaps (SSM layers: the quantity picked, at `query`; attention layers: the
    attention paid by `attention_query`, default `query`; a hybrid gets both, its layers named by their place in
    the model), how they were computed and their numerical checks, and the arrays as a download."""
    spans = [(s.label, s.start, s.end) for s in insp.spans]
    hybrid = insp.has_ssm and insp.has_attention
    checks = []
    if insp.has_ssm:
        quantity = st.radio("Quantity", SSM_QUANTITIES, horizontal=True, key=f"{key}_quantity",
                            format_func=lambda q: data.QUANTITY_LABELS[q])
        at_q = quantity in ("retained", "weight")
        q = query if not at_q or query in insp.references() else len(insp.tokens) - 1
        title = f"{insp.model}: {data.QUANTITY_LABELS[quantity]}" + (f" at token {q}" if at_q else "") \
            + (" (Mamba layers)" if hybrid else "")
        st.plotly_chart(token_figure(data.layer_frame(insp, quantity, q), "value", spans, title, heat=True),
                        key=f"{key}_heat")
        checks.append(f"Recurrence re-run from the hooked tensors vs the layers' own outputs: max relative error "
                      f"{float(insp.arrays['check'].max()):.1e}.")
    if insp.has_attention:
        aq = min(query if attention_query is None else attention_query, len(insp.tokens) - 1)
        title = f"{insp.model}: attention paid by token {aq}, per {'attention ' if hybrid else ''}layer (mean over heads)"
        st.plotly_chart(token_figure(data.layer_frame(insp, "attention", aq), "value", spans, title, heat=True),
                        key=f"{key}_attn" if hybrid else f"{key}_heat")
        rows = insp.arrays["attention"].sum(-1)
        checks.append(f"Every attention row sums to 1 within {float(abs(rows - 1).max()):.1e}.")
    if hybrid:
        checks.insert(0, f"Mamba layers {', '.join(map(str, insp.layers('ssm')))}; attention layers "
                         f"{', '.join(map(str, insp.layers('attention')))}.")
    m = insp.meta
    st.caption(f"{m.get('forward', '')} · {m.get('device', '')} / {m.get('dtype', '')} · {m.get('seconds', 0):.2f} s · "
               + " ".join(checks)
               + (" Untrained placeholder: its numbers describe random weights." if m.get("placeholder") else ""))
    st.download_button("Arrays (.npz)", data.npz_bytes(insp), file_name=f"{insp.model.replace('/', '_')}.npz",
                       key=f"{key}_npz")
