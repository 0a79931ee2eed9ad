"""Arena page through Streamlit's AppTest, on the fake backend (SSM_ARENA_FAKE=1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.models import registry

TIMEOUT = 60
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "arena.py")


def _arena(prompt: str | None = None, models: list[str] | None = None, **settings) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if prompt is not None:
        at.text_area(key="arena_prompt").set_value(prompt)
    if models is not None:
        at.multiselect(key="arena_models").set_value(models)
    for k, v in settings.items():
        at.number_input(key=f"arena_{k}").set_value(v)
    return at


def _metrics(at: AppTest) -> list[dict[str, str]]:
    return [t.value["value"].to_dict() for t in at.table]


def test_defaults_pair_an_ssm_with_a_transformer(arena_env):
    at = _arena()
    chosen = at.multiselect(key="arena_models").value
    assert chosen == list(registry.default_pair())
    families = {registry.get_spec(n).family for n in chosen}
    assert "transformer" in families and families & {"mamba", "mamba2"}


def test_generate_two_fake_models_streams_columns_metrics_and_records_a_run(arena_env):
    from store import open_store

    at = _arena("Tell me about the river", ["toy-mamba", "toy-transformer"], max_new=12)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert [h.value for h in at.subheader][:2] == ["toy-mamba", "toy-transformer"]
    outputs = [c.value for c in at.code]
    assert len(outputs) == 2 and all(o.strip() for o in outputs)
    tables = _metrics(at)
    assert len(tables) == 2
    for t in tables:
        assert t["prompt tokens"] == "5"
        assert 1 <= int(t["new tokens"]) <= 12
        assert t["kernel / attention path"] == "fake"
        assert t["finish reason"] in ("length", "eos")
        assert t["time to first token"].endswith(" ms")
    assert "peak memory (CPU RSS)" in tables[0]
    assert "cache bytes (conv + SSM state)" in tables[0] and "cache bytes (KV cache)" in tables[1]
    # the comparison chart is drawn from the finished columns
    charts = at.get("plotly_chart")
    assert charts and "toy-mamba" in charts[0].proto.spec
    # and the generation is in the store
    store = open_store(str(arena_env / "arena.duckdb"))
    runs = store.runs(kind="generate")
    assert len(runs) == 1
    meas = store.measurements(run_ids=list(runs["run_id"]))
    assert sorted(meas["model"]) == ["toy-mamba", "toy-transformer"]
    preds = store.predictions(run_id=runs["run_id"][0])
    assert set(preds["output"]) == set(outputs)
    # Generate is enabled again once the job ended
    assert not at.button(key="arena_generate").disabled


def test_the_same_prompt_and_settings_give_the_same_greedy_text_on_rerun(arena_env):
    at = _arena("Two plus three is", ["toy-mamba2"], max_new=8)
    at.button(key="arena_generate").click().run()
    first = at.code[0].value
    at.button(key="arena_generate").click().run()
    assert at.code[0].value == first


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_empty_prompt_is_an_error_sentence_and_nothing_runs(arena_env, prompt):
    at = _arena(prompt, ["toy-mamba", "toy-transformer"])
    at.button(key="arena_generate").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The prompt is empty. Type some text (or pick an example) and press Generate again."]
    assert not at.code and not at.table


def test_unavailable_model_error_is_shown_in_its_column_and_the_other_still_runs(arena_env, monkeypatch):
    bad = "AntonV/mamba2-130m-hf"
    ok, sentence = registry.availability(registry.get_spec(bad))
    if ok:
        pytest.skip(f"{bad} happens to be in this machine's Hugging Face cache")
    monkeypatch.delenv("SSM_ARENA_FAKE")  # real manager: the HF id is not on this machine
    at = _arena("hello", [bad], max_new=4)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and bad in errors[0] and "Traceback" not in errors[0]


def test_over_long_prompt_shows_the_exception_sentence(arena_env):
    at = _arena("word " * 2100, ["toy-transformer"], max_new=8)
    at.button(key="arena_generate").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Shorten the prompt" in errors[0]


def test_example_prompt_fills_the_prompt(arena_env):
    at = _arena()
    options = at.selectbox(key="arena_example").options
    assert options
    at.selectbox(key="arena_example").set_value(options[0]).run()
    assert at.text_area(key="arena_prompt").value == options[0]


def test_store_failure_is_a_warning_and_the_text_stays(arena_env, monkeypatch):
    (arena_env / "not-a-db.duckdb").write_text("this is not a database\n" * 10)
    monkeypatch.setenv("SSM_ARENA_DB", str(arena_env / "not-a-db.duckdb"))
    at = _arena("Tell me about the mill", ["toy-mamba"], max_new=6)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    assert at.code[0].value.strip()
    assert any("not saved" in w.value for w in at.warning)
    assert (arena_env / "not-a-db.duckdb").read_text().startswith("this is not a database")
    json.dumps([w.value for w in at.warning])  # plain strings
