"""Arena page through Streamlit's AppTest, on the fake backend (SSM_ARENA_FAKE=1)."""

from __future__ import annotations

import json
import re
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


def _outputs(at: AppTest) -> list[str]:
    """The columns' continuations (the equivalent command is a bash code block too)."""
    return [c.value for c in at.code if c.language != "bash"]


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
    outputs = _outputs(at)
    assert len(outputs) == 2 and all(o.strip() for o in outputs)
    tables = _metrics(at)
    assert len(tables) == 2
    for t in tables:
        assert t["prompt tokens"] == "5"
        assert 1 <= int(t["new tokens"]) <= 12
        assert t["kernel / attention path"] == "fake"
        assert t["finish reason"] in ("length", "eos")
        assert t["time to first token"].endswith(" ms")
    # this model's memory is its weights + its cache; the process's RSS is labelled as the whole process
    # 1M fp32 parameters (3.8 MiB) + the fake SSM state (4 layers x 2 x 256 x 20 x 4 B = 160 KiB)
    assert tables[0]["this model's memory (weights + cache)"] == "4.0 MiB = 3.8 MiB + 160.0 KiB"
    assert "peak RSS of the whole process (app + every loaded model)" in tables[0]
    assert "cache bytes (conv + SSM state)" in tables[0] and "cache bytes (KV cache)" in tables[1]
    # what the model saw, muted, before each continuation; a sentence on the path that ran
    prompts = [c.value for c in at.caption if c.value.startswith("Prompt")]
    assert len(prompts) == 2 and all("Tell me about the river" in p for p in prompts)
    assert sum("fake backend" in c.value for c in at.caption) == 2
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
    first = _outputs(at)[0]
    at.button(key="arena_generate").click().run()
    assert _outputs(at)[0] == first


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_empty_prompt_is_an_error_sentence_and_nothing_runs(arena_env, prompt):
    at = _arena(prompt, ["toy-mamba", "toy-transformer"])
    at.button(key="arena_generate").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The prompt is empty. Type some text (or pick an example) and press Generate again."]
    assert not _outputs(at) and not at.table


def test_models_that_cannot_load_here_are_not_offered_and_the_reason_is_listed(arena_env):
    at = _arena()
    offered = at.multiselect(key="arena_models").options
    assert {"toy-mamba", "toy-mamba2", "toy-transformer"} <= set(offered)
    hf = [s.name for s in registry.list_specs() if s.source == "hf" and not registry.availability(s)[0]]
    assert hf and not set(hf) & set(offered)  # HF_HUB_OFFLINE=1 and not cached: never a choice
    reasons = [t.value for t in at.text if t.value.split(":")[0] in hf]
    assert len(reasons) == len(hf) and all("HF_HUB_OFFLINE" in r for r in reasons)


def test_a_model_that_fails_to_load_is_an_error_in_its_column_and_the_run_is_marked_failed(arena_env, monkeypatch):
    from backend.errors import ModelUnavailableError
    from backend.models.manager import ModelManager
    from store import open_store

    real = ModelManager.get

    def get(self, name, device="auto"):
        if name == "toy-mamba2":
            raise ModelUnavailableError("The weights of 'toy-mamba2' could not be read. Re-save them.")
        return real(self, name, device)

    monkeypatch.setattr(ModelManager, "get", get)
    at = _arena("hello there", ["toy-mamba2", "toy-transformer"], max_new=4)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors == ["The weights of 'toy-mamba2' could not be read. Re-save them."]
    assert len(_outputs(at)) == 2 and _outputs(at)[1].strip()  # the other column still ran
    assert any("1 model(s) failed; the run is marked failed" in c.value for c in at.caption)
    runs = open_store(str(arena_env / "arena.duckdb")).runs(kind="generate")
    assert list(runs["status"]) == ["failed"]
    assert runs["summary"][0]["failed_models"] == {"toy-mamba2": errors[0]}
    assert runs["config"][0]["failed_models"] == ["toy-mamba2"]


def test_over_long_prompt_shows_the_exception_sentence(arena_env):
    at = _arena("word " * 2100, ["toy-transformer"], max_new=8)
    at.button(key="arena_generate").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Shorten the prompt" in errors[0]


def test_example_fills_prompt_reference_and_line_stop_and_answers_are_marked(arena_env):
    from backend.arena.examples import examples
    from backend.generation.interface import GenSettings
    from backend.models.fake import FakeGenerator

    at = _arena()
    qa = next(e for e in examples() if e.key == "qa_closed")
    at.selectbox(key="arena_example").set_value(qa.title).run()
    assert at.text_area(key="arena_prompt").value == qa.prompt
    assert at.text_input(key="arena_reference").value == qa.reference
    assert at.toggle(key="arena_line_stop").value is True and at.number_input(key="arena_max_new").value == 16
    # a reference the fake SSM happens to produce: its column is "right", the transformer's "wrong"
    fake = FakeGenerator("toy-mamba", "mamba").generate(qa.prompt, GenSettings(max_new_tokens=16))
    at.text_input(key="arena_reference").set_value(fake.text.strip())
    at.multiselect(key="arena_models").set_value(["toy-mamba", "toy-transformer"])
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    badges = [m.value for m in at.markdown if "-badge[" in m.value]  # st.badge is a Markdown directive
    assert len(badges) == 2 and ":green-badge[" in badges[0] and "right]" in badges[0], badges
    assert ":red-badge[" in badges[1] and "wrong]" in badges[1], badges
    marks = [t.value for t in at.text if t.value.startswith("answer: ")]
    assert len(marks) == 2 and all(repr(fake.text.strip()) in m for m in marks)


def test_an_edited_example_keeps_no_stale_note(arena_env):
    from backend.arena.examples import examples

    at = _arena()
    ex = examples()[0]
    at.selectbox(key="arena_example").set_value(ex.title).run()
    assert any(c.value.startswith("Example: ") for c in at.caption)
    at.text_area(key="arena_prompt").set_value(ex.prompt + " and more").run()
    assert not any(c.value.startswith("Example: ") for c in at.caption)


def test_warm_up_and_repeats_give_medians_with_their_range_and_are_recorded(arena_env):
    from store import open_store

    at = _arena("Tell me about the mill", ["toy-mamba"], max_new=6, warmup=1, repeats=3)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    table = _metrics(at)[0]
    assert "time to first token (median of 3, range)" in table
    assert re.fullmatch(r"[\d,.]+ ms \([\d,.]+–[\d,.]+\)", table["time to first token (median of 3, range)"])
    assert any("3 timed runs" in c.value for c in at.caption)
    meas = open_store(str(arena_env / "arena.duckdb")).measurements(kinds="generate")
    assert (int(meas["repeats"][0]), int(meas["warmup"][0])) == (3, 1)
    spread = meas["extra"][0]["spread"]["ttft_ms"]
    assert spread[0] <= meas["ttft_ms"][0] <= spread[1] and len(meas["extra"][0]["runs"]) == 3


def test_the_equivalent_command_follows_the_widgets(arena_env):
    at = _arena("Question: Where?\nAnswer:", ["toy-mamba2"], max_new=9)
    at.run()
    cmd = [c.value for c in at.code if c.language == "bash"][0]
    assert cmd.startswith("python -m backend generate --models toy-mamba2 --prompt ")
    assert "--max-new-tokens 9" in cmd and "Question: Where?" in cmd


def test_store_failure_is_a_warning_and_the_text_stays(arena_env, monkeypatch):
    (arena_env / "not-a-db.duckdb").write_text("this is not a database\n" * 10)
    monkeypatch.setenv("SSM_ARENA_DB", str(arena_env / "not-a-db.duckdb"))
    at = _arena("Tell me about the mill", ["toy-mamba"], max_new=6)
    at.button(key="arena_generate").click().run()
    assert not at.exception, at.exception
    assert _outputs(at)[0].strip()
    assert any("not saved" in w.value for w in at.warning)
    assert (arena_env / "not-a-db.duckdb").read_text().startswith("this is not a database")
    json.dumps([w.value for w in at.warning])  # plain strings
