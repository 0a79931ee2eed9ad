"""Training: what the models this repository trains learn, and when. Probe accuracy during training against
tokens seen (emergence), the final probe of every seed (does "above chance" hold in each?), and the final loss
and probe values against model size across the presets (the size ladder). Everything is read from the results
store (run kind "train"); committed results/*.jsonl are imported on first start."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.generation.compare import error_sentence
from pages.components import training as tr
from pages.components.fmt import exportable
from pages.components.resources import ensure_results_imported, get_store, store_path

COMMANDS = ("# import the issue-14 runs (one file per call; importing twice adds nothing)\n"
            "for f in results/train14_*.jsonl*; do python -m backend import-results \"$f\"; done\n"
            "# or every committed result at once\n"
            "python -m backend import-results results/\n"
            "# train them: one seed per call, on a GPU machine (JSONL results land in $OUT)\n"
            "OUT=/some/dir SEED=0 STEPS=2099 bash scripts/gpu_run.sh retrain14")


@st.cache_data(ttl=30, show_spinner=False)
def load(db: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = get_store()
    return store.measurements(kinds=["train"], expand_extra=True), store.runs(kind="train")


st.title("Training")
st.caption("The models this repository trains, probed while they train: few-shot with new labels (k = 0 and 8), "
           "multi-query associative recall (8, 32, 64 pairs), a 2k-token pass key among 4 keys and multi-question "
           "QA, each on held-out items, at fixed points of training. Read them as a comparison of architectures at "
           "a small budget.")

try:
    ensure_results_imported()
    meas, runs = load(store_path())
except Exception as e:
    st.error(f"The results store could not be read: {error_sentence(e)}")
    st.stop()

run_info = tr.run_table(runs)
probes = tr.probe_frame(meas, run_info)
losses = tr.loss_frame(meas, run_info)
run_info = run_info[run_info["run_id"].isin(set(probes["run_id"]) | set(losses["run_id"]))]

if run_info.empty:
    st.info("No training runs are stored yet. Import the committed ones, or train on a GPU and import what it "
            "writes:")
    st.code(COMMANDS, language="bash")
    st.stop()

# ------------------------------------------------------------------ filters
with st.container(border=True):
    c1, c2, c3 = st.columns([1, 3, 2])
    newest_first = run_info.sort_values("created_at", ascending=False)
    with_probes = newest_first[newest_first["run_id"].isin(set(probes["run_id"]))]
    mixtures = list(dict.fromkeys(newest_first["mixture"]))
    first = with_probes["mixture"].iloc[0] if not with_probes.empty else mixtures[0]
    mixture = c1.selectbox("Training mixture", mixtures, index=mixtures.index(first), key="training_mixture",
                           help="\"none\": runs from before mixtures existed (final loss only, no probes).")
    candidates = run_info[run_info["mixture"] == mixture]
    labels = dict(zip(candidates["run_id"], candidates["label"], strict=True))
    picked = c2.multiselect("Runs (seed · preset · recipe)", list(candidates["run_id"]),
                            default=list(candidates["run_id"]), format_func=labels.get, key="training_runs")
    in_runs = pd.concat([probes[probes["run_id"].isin(picked)]["model"],
                         losses[losses["run_id"].isin(picked)]["model"]])
    models = sorted(in_runs.dropna().unique())
    chosen = c3.multiselect("Models", models, default=models, key="training_models")

P = probes[probes["run_id"].isin(picked) & probes["model"].isin(chosen)]
L = losses[losses["run_id"].isin(picked) & losses["model"].isin(chosen)]
if P.empty and L.empty:
    st.info("Nothing matches these filters: pick at least one run and one model.")
    st.stop()
points = tr.final_points(P)

# ------------------------------------------------------------------ emergence
st.header("Emergence: probe accuracy during training")
if P.empty:
    st.info("These runs have no probe rows (runs from before issue 14 recorded only their final loss).")
else:
    st.caption("One panel per probe task; x: tokens seen, y: accuracy with its 95% Wilson interval (from correct / "
               "n at each probe), one colour per model, one line style and marker per run (seed, and the long "
               "phase where runs differ in it); the dashed grey line is chance.")
    st.plotly_chart(tr.emergence_figure(P), width="stretch", key="training_emergence")

# ------------------------------------------------------------------ seeds
st.header("Seeds: the final probe of each run")
if points.empty:
    st.info("No probe rows in these runs.")
else:
    st.caption("Per recipe and preset: each seed's value at the last probe (filled: its lower 95% Wilson bound is "
               "above chance; open: not), the mean (black bar) and the range over seeds. A claim \"above chance\" "
               "holds only where it holds in every seed.")
    summary = tr.seeds_summary(points)
    for (recipe, preset), g in points.groupby(["recipe", "preset"], sort=False):
        n_seeds = g["run_id"].nunique()
        st.subheader(f"{preset} · {recipe} · {n_seeds} seed{'s' if n_seeds != 1 else ''}")
        if n_seeds == 1:
            st.caption("One seed only: \"every seed\" is that one run here, not a replicated claim.")
        st.plotly_chart(tr.seeds_figure(g, f"Final probe per seed — {preset}, {recipe}"), width="stretch",
                        key=f"training_seeds_{recipe}_{preset}")
        s = summary[(summary["recipe"] == recipe) & (summary["preset"] == preset)]
        held = s[s["every seed"]]
        if held.empty:
            st.caption("Above chance in every seed: nowhere.")
        else:
            st.caption("Above chance in every seed: " + "; ".join(f"{m} on {t} (mean {v:.2f})" for m, t, v in
                                                                 zip(held["model"], held["task"], held["mean"],
                                                                     strict=True)) + ".")
        st.dataframe(exportable(s.drop(columns=["recipe", "preset"])), hide_index=True,
                     key=f"training_seeds_table_{recipe}_{preset}",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("mean", "low", "high", "chance")})

# ------------------------------------------------------------------ size ladder
st.header("Size ladder: final values against parameters")
ladder = tr.scaling_points(points, L)
note = tr.ladder_note(ladder)
if note:
    st.info(note)
if not ladder.empty:
    measures = [tr.FINAL_LOSS] + [t for t in tr.TASKS if t in set(ladder["measure"])] + \
        sorted(set(ladder["measure"]) - {tr.FINAL_LOSS, *tr.TASKS})
    measure = st.selectbox("Measure", measures, key="training_measure")
    st.caption("x: parameters (log scale); one colour per model (family in the legend), each seed a point, the line "
               "through each preset's mean. Different recipes are drawn apart.")
    for recipe, g in ladder.groupby("recipe", sort=False):
        st.plotly_chart(tr.scaling_figure(g, measure, recipe), width="stretch", key=f"training_ladder_{recipe}")
    if not L.empty:
        show = L[["model", "family", "preset", "n_params", "short", "steps", "tokens_seen", "value"]]
        st.dataframe(exportable(show.rename(columns={"short": "run", "value": "final loss"})), hide_index=True,
                     key="training_losses")

with st.expander("Equivalent commands"):
    st.code(COMMANDS, language="bash")
