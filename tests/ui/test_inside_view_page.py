"""Inside view page through AppTest: on the fake backend (it says there is nothing to look inside) and on tiny
real models registered as local folders (it computes, plots and highlights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.models import registry
from backend.models.placeholders import build_tiny
from tests.backend.inside.test_hybrid_inside import build_tiny_hybrid

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "inside_view.py")
TIMEOUT = 180
PROMPT = "Passkey: 58213. Remember it, the passkey is 58213.\nQuestion: the passkey?"


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-ui")
    folders = {arch: build_tiny(arch, root / arch) for arch in ("mamba2", "llama")}
    return {**folders, "hybrid": build_tiny_hybrid(root / "hybrid")}


@pytest.fixture
def real_env(arena_env, monkeypatch, tiny_folders):
    """arena_env without the fake backend, and two tiny local models."""
    import streamlit as st

    monkeypatch.delenv("SSM_ARENA_FAKE")
    st.cache_resource.clear()
    registry.add_local_model(tiny_folders["mamba2"], name="tiny-m2")
    registry.add_local_model(tiny_folders["llama"], name="tiny-llama")
    registry.add_local_model(tiny_folders["hybrid"], name="tiny-hybrid")
    return arena_env


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_fake_backend_says_there_is_nothing_to_look_inside(arena_env):
    at = _page()
    assert "fake backend is in use" in at.info[0].value
    assert at.multiselect(key="inside_models").value == ["toy-mamba", "toy-mamba2", "toy-transformer"]
    assert "python -m backend inspect --model toy-mamba,toy-mamba2,toy-transformer --prompt" in at.code[0].value
    at.text_area(key="inside_prompt").set_value("The river flows north.")
    at.button(key="inside_run").click().run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 3 and all("served by the fake backend" in w and "Unset SSM_ARENA_FAKE" in w
                                      for w in warnings)
    assert not at.get("plotly_chart")


def test_an_empty_prompt_and_no_model_are_sentences(arena_env):
    at = _page()
    at.multiselect(key="inside_models").set_value([])
    at.button(key="inside_run").click().run()
    assert at.error[0].value == "Pick at least one model above."
    at.multiselect(key="inside_models").set_value(["toy-mamba"])
    at.button(key="inside_run").click().run()
    assert "Give a prompt" in at.error[0].value


def test_real_models_side_by_side_with_highlights(real_env):
    at = _page()
    at.multiselect(key="inside_models").set_value(["tiny-m2", "tiny-llama"])
    at.text_area(key="inside_prompt").set_value(PROMPT)
    at.number_input(key="inside_new").set_value(3)
    at.button(key="inside_run").click().run()
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [w.value for w in at.warning]
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # what each keeps, then one layer x token heatmap per model
    kept = json.loads(charts[0].proto.spec)
    rows = [d["name"] for d in kept["data"]]  # one line per model, named in the legend
    assert len(rows) == 2 and rows[0].startswith("tiny-m2: retained in the state at token")
    assert rows[1].startswith("tiny-llama: attention at token")
    assert [t.label for t in at.tabs] == ["tiny-m2", "tiny-llama"]
    captions = " ".join(c.value for c in at.caption)
    assert "read by hooks" in captions and "Every attention row sums to 1 within" in captions
    assert "--new-tokens 3" in at.code[0].value
    at.radio(key="inside_ssm_view").set_value("weight").run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["name"].startswith("tiny-m2: implicit attention")
    # the transformer's picked position moves its attention row
    at.toggle(key="inside_pick").set_value(True).run()
    at.slider(key="inside_query_pos").set_value(4).run()
    kept = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert kept["data"][1]["name"] == "tiny-llama: attention at token 4"


def test_a_passkey_instance_highlights_the_key(real_env):
    at = _page()
    at.multiselect(key="inside_models").set_value(["tiny-m2", "tiny-llama"])
    at.radio(key="inside_source").set_value("Pass-key instance").run()
    at.number_input(key="inside_length").set_value(96)
    at.button(key="inside_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(t.value.startswith("Instance length=96/depth=0.5") for t in at.text)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"tiny-m2", "tiny-llama"} and set(table["span"]) == {"pass key"}
    assert ((table["weight"] >= 0) & (table["weight"] <= 1)).all()
    assert table["retained"].notna().tolist() == [f == "mamba2" for f in table["family"]]
    shapes = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"]
    assert len(shapes) >= 2  # the key's occurrences are shaded
    assert "--passkey 96 --depth 0.5" in at.code[0].value


def test_opened_from_a_request_runs_at_once(real_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["inside_request"] = {"models": ["tiny-llama"], "prompt": PROMPT,
                                          "outputs": {"tiny-llama": [5, 6]}, "origin": "Arena column tiny-llama"}
    at.run()
    assert not at.exception, at.exception
    assert at.text_area(key="inside_prompt").value == PROMPT
    assert any(c.value == "Opened from Arena column tiny-llama." for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
    options = at.selectbox(key="inside_at").options  # the Arena's two output tokens were inspected too
    assert options[0].startswith("the end of the prompt") and options[1].startswith("output token 1")
    assert len(options) == 4 and options[-1] == "the end of the text"
    before = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["name"]
    at.selectbox(key="inside_at").set_value(1).run()
    after = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["name"]
    q = int(before.rsplit(" ", 1)[1])  # the last prompt token, then the first output token
    assert before == f"tiny-llama: attention at token {q}" and after == f"tiny-llama: attention at token {q + 1}"


def test_opened_from_an_experiment_instance_rebuilds_it_from_the_stored_run(real_env, tiny_folders):
    from transformers import AutoTokenizer

    from backend.inside import instances
    from store import open_store

    config = instances.passkey_config(80, 1.0, seed=5, models=["tiny-llama"])
    tok = AutoTokenizer.from_pretrained(tiny_folders["llama"])
    expected = instances.from_plan(config, query=0, count_tokens=lambda t: len(tok(t)["input_ids"]))
    run_id = open_store().start_run(config.kind, config.to_dict(), {})
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["inside_request"] = {"models": ["tiny-llama"], "run_id": run_id, "instance_id": expected.id}
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="inside_source").value == "Experiment instance"
    assert any(t.value == f"Instance {expected.id} · reference answer: {expected.reference}" for t in at.text)
    assert at.code[-1].value == expected.prompt  # the text shown is the plan's prompt, not an elided copy
    assert f"--run {run_id} --instance {expected.id}" in at.code[0].value
    assert at.dataframe[0].value["span"].tolist() == ["pass key"] * len(expected.char_spans)


def test_a_hybrid_shows_its_mamba_layers_and_its_attention_layers(real_env):
    at = _page()
    at.multiselect(key="inside_models").set_value(["tiny-hybrid", "tiny-llama"])
    at.text_area(key="inside_prompt").set_value(PROMPT)
    at.button(key="inside_run").click().run()
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [w.value for w in at.warning]
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # what each keeps, the hybrid's two heatmaps, the transformer's one
    rows = [d["name"] for d in json.loads(charts[0].proto.spec)["data"]]
    assert rows[0].startswith("tiny-hybrid: retained in the state at token") and rows[0].endswith("(Mamba layers)")
    assert rows[1].endswith("(attention layers)") and rows[2].startswith("tiny-llama: attention at token")
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts[1:3]]
    assert titles[0].endswith("(Mamba layers)") and "per attention layer" in titles[1]
    ssm_rows = {t for t in json.loads(charts[1].proto.spec)["data"][0]["y"]}
    assert ssm_rows == {"layer 0", "layer 2", "layer 3"}
    captions = " ".join(c.value for c in at.caption)
    assert "Mamba layers 0, 2, 3; attention layers 1." in captions and "read by hooks" in captions
    at.toggle(key="inside_pick").set_value(True).run()
    at.slider(key="inside_query_pos").set_value(4).run()
    rows = [d["name"] for d in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert rows[1] == "tiny-hybrid: attention at token 4 (attention layers)"
