"""The Training page (issue 14): emergence curves, seeds and the size ladder, built from the committed training
results (results/train14_*.jsonl[.gz], read straight from the JSONL) and rendered through AppTest from a temporary
store holding those files."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

# GPU images have neither streamlit nor duckdb (results travel as JSONL): skip there
pytest.importorskip("streamlit", reason="streamlit not installed (e.g. a GPU image)")
pytest.importorskip("duckdb", reason="duckdb not installed (e.g. a GPU image): the page reads the DuckDB store")

from pages.components import training as tr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "training.py")
# the three issue-14 runs: two seeds of the recipe, and the "every step long" ablation (named, so that later
# runs added to results/ do not change the counts below)
FILES = [ROOT / "results" / f for f in ("train14_h100_s0.jsonl.gz", "train14_h100_s1.jsonl.gz", "train14_h100_s0_longall.jsonl")]
PROBE_TASKS = {"fewshot-new-k0", "fewshot-new-k8", "mqar-8", "mqar-32", "mqar-64", "passkey-2k-4keys", "multi-qa-4"}
MODELS = {"toy-mamba", "toy-mamba2", "toy-transformer", "toy-hybrid", "toy-transformer-deep"}


def read_jsonl(files=FILES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measurements, runs) as the store returns them: each measurement's data with its run_id."""
    runs, rows = [], []
    for f in files:
        text = gzip.decompress(f.read_bytes()).decode() if f.suffix == ".gz" else f.read_text()
        for line in text.splitlines():
            r = json.loads(line)
            if r["type"] == "run":
                runs.append({k: r[k] for k in ("run_id", "kind", "created_at", "config")})
            elif r["type"] == "measurement":
                rows.append({**r["data"], "run_id": r["run_id"]})
    return pd.DataFrame(rows), pd.DataFrame(runs)


@pytest.fixture(scope="module")
def committed():
    assert all(f.exists() for f in FILES), FILES
    meas, runs = read_jsonl()
    info = tr.run_table(runs)
    probes = tr.probe_frame(meas, info)
    return {"meas": meas, "info": info, "probes": probes, "losses": tr.loss_frame(meas, info),
            "points": tr.final_points(probes)}


# ------------------------------------------------------------------ tables
def test_runs_are_labelled_by_seed_and_long_phase(committed):
    info = committed["info"]
    assert sorted(info["seed"]) == [0, 0, 1] and set(info["mixture"]) == {"context"}
    ablation = info[info["long_phase"].str.contains("ablation")]
    assert len(ablation) == 1 and "every step long" in ablation["long_phase"].iloc[0]
    assert set(info["long_phase"]) - set(ablation["long_phase"]) == {
        "long phase: 1 step in 2 long (last 20% of steps at 8,192 tokens)"}
    assert tr.long_phase({}) == "no long phase"  # issue-13 runs had none
    assert tr.long_phase({"long_seq_len": 8192, "long_frac": 0.2, "long_every": 1}).startswith(
        "long phase: every step long (")


def test_probe_rows_keyed_on_model_with_wilson_bounds(committed):
    p = committed["probes"]
    assert set(p["task"]) == PROBE_TASKS and set(p["model"]) == MODELS
    # toy-transformer-deep shares the family "transformer": rows stay apart by model
    assert set(p[p["family"] == "transformer"]["model"]) == {"toy-transformer", "toy-transformer-deep"}
    assert len(p) == 3 * 5 * 7 * 5  # runs x models x tasks x probe points
    assert (p["ci_low"] <= p["value"] + 1e-9).all() and (p["value"] <= p["ci_high"] + 1e-9).all()
    first = p[(p["model"] == "toy-mamba") & (p["task"] == "fewshot-new-k0") & (p["step"] == 262)
              & (p["short"] == "seed 0 · 1 step in 2 long")].iloc[0]
    assert (first["correct"], first["n"]) == (27, 64)
    # 27/64, worked by hand from the Wilson formula (z = 1.96): centre 0.4263, half-width 0.1176
    assert (first["ci_low"], first["ci_high"]) == (pytest.approx(0.3087, abs=1e-4), pytest.approx(0.5439, abs=1e-4))
    zero = p[(p["correct"] == 0) & (p["n"] == 64)].iloc[0]
    # 0/64: the lower bound is 0 exactly, the upper z^2/n / (1 + z^2/n) = 0.0566
    assert zero["ci_low"] == 0.0 and zero["ci_high"] == pytest.approx(0.05662, abs=1e-4)


def test_final_loss_rows(committed):
    losses = committed["losses"]
    assert len(losses) == 15 and set(losses["model"]) == MODELS and set(losses["preset"]) == {"small"}
    assert losses["value"].between(0.5, 3).all() and losses["n_params"].gt(1e6).all()


def _point(seed: int, correct: int, n: int = 64, chance: float = 0.5, **kw) -> dict:
    from backend.experiments.metrics import wilson_interval

    lo, hi = wilson_interval(correct, n)
    return {"run_id": f"r{seed}", "recipe": "r", "preset": "small", "model": "m", "task": "fewshot-new-k8",
            "seed": seed, "value": correct / n, "correct": correct, "n": n, "chance": chance, "ci_low": lo,
            "ci_high": hi, **kw}


def test_the_claim_must_hold_in_every_seed():
    both = pd.DataFrame([_point(0, 60), _point(1, 58)])
    one_at_chance = pd.DataFrame([_point(0, 60), _point(1, 32)])  # seed 1: 0.5 = chance
    assert tr.holds_in_every_seed(both)
    assert not tr.holds_in_every_seed(one_at_chance)
    assert not tr.holds_in_every_seed(one_at_chance.iloc[0:0])  # no seed: no claim
    # above chance in value is not enough: 38/64 = 0.59, but its lower bound 0.47 is below 0.5
    assert not tr.holds_in_every_seed(pd.DataFrame([_point(0, 60), _point(1, 38)]))
    s = tr.seeds_summary(one_at_chance).iloc[0]
    assert s["above chance"] == "1 of 2 seeds" and not s["every seed"]
    assert (s["seeds"], s["low"], s["high"]) == (2, 0.5, 60 / 64) and s["mean"] == pytest.approx((60 + 32) / 128)


def test_seeds_summary_on_the_committed_runs(committed):
    s = tr.seeds_summary(committed["points"])
    main = s[~s["recipe"].str.contains("ablation")]
    assert set(main["seeds"]) == {2} and len(main) == 5 * 7
    k8 = main[main["task"] == "fewshot-new-k8"].set_index("model")
    assert k8.loc["toy-hybrid", "every seed"]  # 1.000 and 0.984 of 64 in the two seeds
    assert k8.loc["toy-transformer", "above chance"] == "1 of 2 seeds"  # 0.984 in seed 0, 0.422 in seed 1
    assert not k8.loc["toy-transformer", "every seed"]
    assert not main[main["task"].str.startswith("mqar")]["every seed"].any()
    assert set(s[s["recipe"].str.contains("ablation")]["seeds"]) == {1}
    final = committed["points"]
    assert set(final.groupby("run_id")["step"].max()) == {2099} and (final["step"] == 2099).all()


def test_three_seeds_of_the_recipe():
    """With seed 2 (results/train14_h100_s2.jsonl.gz): the hybrid's few-shot at k = 8 holds in every seed, the
    transformer's in 2 of 3, the depth-matched transformer's in 1 of 3, the SSMs' and MQAR's in none."""
    meas, runs = read_jsonl([*FILES[:2], ROOT / "results" / "train14_h100_s2.jsonl.gz"])
    s = tr.seeds_summary(tr.final_points(tr.probe_frame(meas, tr.run_table(runs))))
    assert set(s["seeds"]) == {3} and len(s) == 5 * 7
    k8 = s[s["task"] == "fewshot-new-k8"].set_index("model")
    assert k8.loc["toy-hybrid", "every seed"]
    assert k8.loc["toy-transformer", "above chance"] == "2 of 3 seeds"
    assert k8.loc["toy-transformer-deep", "above chance"] == "1 of 3 seeds"
    assert k8.loc["toy-mamba", "above chance"] == k8.loc["toy-mamba2", "above chance"] == "0 of 3 seeds"
    assert not s[s["task"].str.startswith("mqar")]["every seed"].any()


# ------------------------------------------------------------------ figures
def _chance_traces(fig) -> list:
    return [t for t in fig.data if t.name == "chance"]


def test_emergence_panels_per_task_with_chance_lines(committed):
    p = committed["probes"]
    fig = tr.emergence_figure(p)
    assert [a.text for a in fig.layout.annotations] == list(tr.TASKS)
    chance = _chance_traces(fig)
    assert len(chance) == 7 and all(t.line.dash == "dash" for t in chance)
    assert sorted(t.y[0] for t in chance) == pytest.approx(sorted([0.5, 0.5, 0.125, 1 / 32, 1 / 64, 0.25, 0.25]),
                                                          abs=1e-4)  # stored to 4 digits
    assert sum(t.showlegend is not False for t in chance) == 1
    lines = [t for t in fig.data if t.name != "chance"]
    assert len(lines) == 7 * 5 * 3  # task x model x run
    colours = {t.name.split(" · ")[0]: t.line.color for t in lines}
    assert set(colours) == MODELS and len(set(colours.values())) == 5  # one colour per model
    run_dashes = {t.name.split(" · ", 1)[1]: t.line.dash for t in lines}
    assert len(run_dashes) == 3 and len(set(run_dashes.values())) == 3 and "dash" not in run_dashes.values()
    one = next(t for t in lines if t.name == "toy-hybrid · seed 0 · 1 step in 2 long" and t.xaxis == "x2")
    assert list(one.x) == sorted(one.x) and len(one.x) == 5  # fewshot-new-k8 against tokens seen
    assert one.y[-1] == 1.0 and one.error_y.arrayminus[-1] == pytest.approx(1.0 - 0.9437, abs=1e-3)
    assert {t.name for t in fig.data if t.showlegend is not False} == {t.name for t in fig.data}


def test_seeds_figure_points_means_and_chance(committed):
    pts = committed["points"]
    main = pts[~pts["recipe"].str.contains("ablation")]
    fig = tr.seeds_figure(main, "t")
    assert len(_chance_traces(fig)) == 7
    means = [t for t in fig.data if t.legendgroup == "mean"]
    assert len(means) == 7 * 5
    seeds = [t for t in fig.data if t.legendgroup in ("seed 0", "seed 1")]
    assert len(seeds) == 7 * 5 * 2
    hybrid_k8 = [t for t in seeds if t.xaxis == "x2" and "toy-hybrid" in t.hovertemplate]
    assert {t.marker.symbol for t in hybrid_k8} == {"circle", "diamond"}  # filled: above chance in each seed
    mqar = [t for t in seeds if t.xaxis == "x3"]
    assert all(t.marker.symbol.endswith("-open") for t in mqar)


def test_scaling_view_with_only_the_small_preset(committed):
    ladder = tr.scaling_points(committed["points"], committed["losses"])
    note = tr.ladder_note(ladder)
    assert note and "small" in note and "medium, large" in note and "not trained yet" in note
    main = ladder[~ladder["recipe"].str.contains("ablation")]
    fig = tr.scaling_figure(main, tr.FINAL_LOSS, "main")
    assert fig.layout.xaxis.type == "log" and "not trained yet" in fig.layout.title.text
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 5 and all(len(t.x) == 1 for t in lines)  # one size per model so far
    assert {t.name for t in lines} >= {"toy-transformer (transformer)", "toy-transformer-deep (transformer)"}
    assert not _chance_traces(fig)
    task_fig = tr.scaling_figure(main, "fewshot-new-k8")
    assert len(_chance_traces(task_fig)) == 1 and _chance_traces(task_fig)[0].y[0] == 0.5
    # with the ladder trained, no note
    more = pd.concat([main.assign(preset=p, n_params=main["n_params"] * f)
                      for p, f in (("small", 1), ("medium", 4), ("large", 16))])
    assert tr.ladder_note(more) is None
    assert all(len(t.x) == 3 for t in tr.scaling_figure(more, tr.FINAL_LOSS).data if t.mode == "lines+markers")
    assert "not trained yet" not in (tr.scaling_figure(more, tr.FINAL_LOSS).layout.title.text or "")


# ------------------------------------------------------------------ the page
@pytest.fixture
def env(results_env):
    return results_env


def _run():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=90).run()
    assert not at.exception, at.exception
    return at


def _specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_page_renders_the_committed_training_runs(env):
    for f in FILES:
        shutil.copy(f, env / "results" / f.name)
    at = _run()
    assert not at.error, [e.value for e in at.error]
    headers = [h.value for h in at.header]
    assert any(h.startswith("Emergence") for h in headers) and any(h.startswith("Seeds") for h in headers)
    assert any(h.startswith("Size ladder") for h in headers)
    assert at.selectbox(key="training_mixture").value == "context"
    assert len(at.multiselect(key="training_runs").value) == 3
    assert set(at.multiselect(key="training_models").value) == MODELS
    specs = _specs(at)
    assert len(specs) == 1 + 2 + 2  # emergence, seeds per recipe (main + ablation), ladder per recipe
    emergence = specs[0]
    assert sum(t.get("name") == "chance" for t in emergence["data"]) == 7
    assert any("not trained yet" in i.value for i in at.info)
    assert not any("seed 1" in s.value for s in at.subheader)  # subheaders name recipes, not runs
    assert any("2 seeds" in s.value for s in at.subheader) and any("1 seed" in s.value for s in at.subheader)
    assert any("toy-hybrid on fewshot-new-k8" in c.value for c in at.caption)
    code = "\n".join(c.value for c in at.code)
    assert "scripts/gpu_run.sh retrain14" in code and "import-results" in code

    at.multiselect(key="training_models").set_value(["toy-hybrid"]).run()
    assert not at.exception, at.exception
    lines = [t for t in _specs(at)[0]["data"] if t.get("name") != "chance"]
    assert lines and all(t["name"].startswith("toy-hybrid · ") for t in lines)
    ablation = [r for r in at.multiselect(key="training_runs").options if "ablation" in r]
    assert len(ablation) == 1
    at.selectbox(key="training_measure").set_value("fewshot-new-k8").run()
    assert not at.exception, at.exception


def test_page_explains_an_empty_store(env):
    at = _run()
    assert not at.error
    assert any("No training runs are stored yet" in i.value for i in at.info)
    assert "scripts/gpu_run.sh retrain14" in at.code[0].value


def test_page_says_when_the_store_is_locked(env, monkeypatch):
    import store
    from store import StoreLockedError

    def locked(*a, **k):
        raise StoreLockedError("The results database is in use by another program; try again in a moment.")

    monkeypatch.setattr(store, "open_store", locked)
    at = _run()
    assert at.error and "could not be read" in at.error[0].value and "in use" in at.error[0].value


def test_the_page_is_in_the_navigation(arena_env):
    from streamlit.testing.v1 import AppTest

    for f in FILES:
        shutil.copy(f, arena_env / "results" / f.name)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Training" and not at.error
