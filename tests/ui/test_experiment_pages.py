"""Few-shot, Long context and Chain-of-thought pages through AppTest on the fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.experiments.config import ExperimentConfig
from backend.experiments.runner import run_experiment
from backend.generation.interface import GenerationResult, Generator, GenMetrics, ModelInfo
from backend.models.fake import FakeGenerator

TIMEOUT = 60
PAGES = Path(__file__).resolve().parents[2] / "pages"
MODELS = ["toy-mamba", "toy-transformer"]
SMALL = {  # page -> (experiment, widget settings that keep a run to a few instances)
    "fewshot": ("fewshot", {"multiselect": {"fewshot_ks": [0, 2]}, "number_input": {"fewshot_n": 2}}),
    "long_context": ("long-context", {"multiselect": {"longctx_lengths": [128, 4096], "longctx_depths": [0.0, 1.0]},
                                      "number_input": {"longctx_n": 1}}),
    "cot": ("cot", {"multiselect": {"cot_steps": [1, 2]}, "number_input": {"cot_n": 2}}),
}


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def configure(at: AppTest, name: str) -> AppTest:
    _, widgets = SMALL[name]
    at.multiselect(key=f"{dict(fewshot='fewshot', long_context='longctx', cot='cot')[name]}_models").set_value(MODELS)
    for kind, values in widgets.items():
        for key, v in values.items():
            getattr(at, kind)(key=key).set_value(v)
    return at.run()


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def stored_runs():
    from store import open_store

    return open_store().runs()


@pytest.mark.parametrize("name", list(SMALL))
def test_empty_store_shows_the_command_and_a_hint(arena_env, name):
    at = page(name)
    assert any("python -m backend experiment" in c.value for c in at.code)
    assert any("No " in i.value and "stored yet" in i.value for i in at.info)
    assert at.button(key=f"{dict(fewshot='fewshot', long_context='longctx', cot='cot')[name]}_run").disabled is False


@pytest.mark.parametrize("name", list(SMALL))
def test_run_from_the_page_records_and_plots(arena_env, name):
    key = dict(fewshot="fewshot", long_context="longctx", cot="cot")[name]
    at = configure(page(name), name)
    command = next(c.value for c in at.code if c.value.startswith("python -m backend experiment"))
    at.button(key=f"{key}_run").click().run()
    assert not at.exception, at.exception
    runs = stored_runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed"
    cfg = ExperimentConfig.from_dict(runs.iloc[0]["config"])
    assert cfg.to_cli() == command and cfg.models == MODELS  # the page ran exactly what it showed
    assert charts(at), "no plot drawn"
    assert not at.error, [e.value for e in at.error]
    if name == "long_context":
        assert len(charts(at)) >= 4  # a heatmap per model, the difference heatmap, the efficiency panel
        assert any("not scored" in w.value for w in at.warning)  # 4096 tokens exceeds the fake transformer
    # the per-instance browser shows one column per model
    assert sum(1 for m in at.markdown if m.value in (f"**{x}**" for x in MODELS)) == 2


def test_cli_runs_appear_and_two_runs_compare(arena_env):
    from store import open_store

    st = open_store()
    gens = {m: FakeGenerator(m, fam) for m, fam in zip(MODELS, ["mamba", "transformer"], strict=True)}
    for seed in (0, 1):
        cfg = ExperimentConfig("cot", MODELS, n=2, seed=seed, sweep={"steps": [1], "mode": ["direct", "cot"]},
                               task="arithmetic")
        run_experiment(cfg, gens, st)
    at = page("cot")
    assert charts(at)
    assert any(df.value.columns.tolist()[:2] == ["model", "instances in both"] for df in at.dataframe)


class Chain(Generator):
    def __init__(self):
        super().__init__()
        self.info = ModelInfo(name="toy-mamba", family="mamba", n_params=1, dtype="float32", device="cpu",
                              max_context=None, path="test")

    def stream(self, prompt, settings, should_stop=None):
        m = GenMetrics(1, 1, 1.0, 1.0, None, None, None, 1.0, 0, "cpu_rss", 0, "ssm_state", "test", "cpu", "float32")
        text = "2 + 3 = 5.\nThe answer is 5.\n\nQuestion: <b>9</b>" if "step by step" in prompt else " 5."
        yield GenerationResult("toy-mamba", "mamba", prompt, text, [1], "length", m, settings)

    def loglikelihood(self, requests):
        return [(0.0, True) for _ in requests]

    def count_tokens(self, text):
        return len(text.split())


def test_chains_highlight_the_extracted_answer_as_text(arena_env):
    from store import open_store

    cfg = ExperimentConfig("cot", ["toy-mamba"], n=1, sweep={"steps": [1], "mode": ["cot"]}, task="arithmetic")
    run_experiment(cfg, {"toy-mamba": Chain()}, open_store())
    at = page("cot")
    chain = [m.value for m in at.markdown if "orange-background" in m.value]
    assert chain == ["2 \\+ 3 \\= 5\\.  \nThe answer is :orange-background[**5**]\\."]
    assert any("<b>9</b>" in c.value for c in at.code)  # the unscored tail, shown as plain text


def test_a_cancelled_run_resumes_from_the_page(arena_env):
    from store import open_store

    st = open_store()
    cfg = ExperimentConfig("fewshot", MODELS, n=2, sweep={"k": [0, 1]}, task="sentiment")
    gens = {m: FakeGenerator(m, fam) for m, fam in zip(MODELS, ["mamba", "transformer"], strict=True)}
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    first = run_experiment(cfg, gens, st, should_stop=stop)
    assert first.status == "cancelled"
    at = page("fewshot")
    at.button(key="fewshot_resume_stored").click().run()
    assert not at.exception, at.exception
    run = open_store().runs().iloc[0]
    assert run["run_id"] == first.run_id and run["status"] == "completed"
    assert len(open_store().predictions(run_id=first.run_id)) == 8


def test_a_finished_page_run_is_selected_and_the_buttons_reset(arena_env):
    from store import open_store

    cfg = ExperimentConfig("fewshot", MODELS, n=1, sweep={"k": [0]}, task="sentiment")
    gens = {m: FakeGenerator(m, fam) for m, fam in zip(MODELS, ["mamba", "transformer"], strict=True)}
    older = run_experiment(cfg, gens, open_store())
    at = configure(page("fewshot"), "fewshot")
    at.button(key="fewshot_run").click().run()
    assert not at.exception, at.exception
    newest = open_store().runs().iloc[0]["run_id"]
    assert newest != older.run_id
    assert at.selectbox(key="fewshot_pick").value == newest
    assert not at.button(key="fewshot_run").disabled and at.button(key="fewshot_cancel").disabled
    assert not at.warning, [w.value for w in at.warning]


def _committed(stem: str, gpu: str) -> str:
    """The committed file's name: the v1 GPU runs are kept gzip-compressed (the store reads both)."""
    return f"exp_{stem}_{gpu}.jsonl.gz"


COMMITTED = [(name, _committed(stem, gpu), gpu) for gpu in ("h100", "h200")
             for name, stem in (("long_context", "long_context"), ("fewshot", "fewshot"), ("cot", "cot"))]
PICK = dict(fewshot="fewshot_pick", long_context="longctx_pick", cot="cot_pick")


@pytest.mark.parametrize("name, file, gpu", COMMITTED)
def test_committed_gpu_results_render(arena_env, name, file, gpu):
    from store import open_store

    path = PAGES.parent / "results" / file
    if not path.is_file():
        pytest.skip(f"{file} is not committed")
    open_store().import_jsonl(path)
    at = page(name)
    assert charts(at) and not at.error, [e.value for e in at.error]
    pick = at.selectbox(key=PICK[name])
    assert pick.options and all(gpu.upper() in o for o in pick.options), pick.options  # labels name the device
    if name == "long_context":
        assert len(charts(at)) >= 5  # three heatmaps, the difference, accuracy by length (+ efficiency)
        if gpu == "h100":
            assert any("preallocated KV cache" in c.value for c in at.caption)  # old rows count the allocation
    # every run in the file can be drawn, not only the default one
    for i in range(1, len(pick.options)):
        at.selectbox(key=PICK[name]).select_index(i).run()
        assert not at.exception and charts(at) and not at.error, (i, at.exception, [e.value for e in at.error])


@pytest.mark.parametrize("name", list(PICK))
def test_committed_gpu_results_default_to_the_newest_run(arena_env, name):
    """With the previous checkpoints' H100 runs and the retrained trio's H200 runs both stored (as on first
    start), each page opens on the newest run: an H200 one."""
    from store import open_store

    stem = dict(fewshot="fewshot", long_context="long_context", cot="cot")[name]
    files = [PAGES.parent / "results" / _committed(stem, gpu) for gpu in ("h100", "h200")]
    if not all(f.is_file() for f in files):
        pytest.skip("needs both the h100 and the h200 results")
    for f in files:
        open_store().import_jsonl(f)
    at = page(name)
    pick = at.selectbox(key=PICK[name])
    runs = open_store().runs()
    newest = runs.sort_values("created_at").iloc[-1]["run_id"]
    assert pick.value == newest and "H200" in pick.options[pick.index], pick.options


def _spec(chart) -> str:
    """The figure as JSON text with its unicode unescaped (trace names, titles)."""
    return json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)


@pytest.mark.parametrize("name, experiment, task, sweep, floor", [
    ("fewshot", "fewshot", "arbitrary", {"k": [0, 16]}, "chance (floor)"),
    ("long_context", "long-context", "recall", {"pairs": [4, 32]}, "random listed value (floor)"),
    ("cot", "cot", "arithmetic", {"steps": [2, 7], "mode": ["direct"]}, None),
])
def test_pages_draw_floors_training_panels_and_the_difference_from_the_transformer(arena_env, name, experiment, task,
                                                                                  sweep, floor):
    from store import open_store

    gens = {m: FakeGenerator(m, fam) for m, fam in zip(MODELS, ["mamba", "transformer"], strict=True)}
    run_experiment(ExperimentConfig(experiment, MODELS, n=4, sweep=sweep, task=task), gens, open_store())
    at = page(name)
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    specs = [_spec(c) for c in charts(at)]
    if floor:
        assert any(floor in s for s in specs), "no floor line drawn"
    assert any("within training" in s and "beyond training" in s for s in specs), "no in/out-of-distribution panels"
    assert any("toy-mamba − toy-transformer" in s for s in specs), "no difference from the transformer"
    assert any("p_holm" in df.value.columns for df in at.dataframe)  # the paired table (McNemar, Holm)
