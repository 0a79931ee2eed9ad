"""Models page through AppTest on the fake backend."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.models import registry

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "models.py")


def _models_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_registry_table_lists_every_model_with_its_availability_sentence(arena_env):
    at = _models_page()
    table = at.dataframe[0].value
    assert set(table["name"]) == {s.name for s in registry.list_specs()}
    hf = table[table["name"] == "state-spaces/mamba-130m-hf"].iloc[0]
    assert hf["family"] == "mamba" and hf["source"] == "hf" and hf["paired with"] == "EleutherAI/pythia-160m"
    if hf["available"] == "no":  # not in this machine's HF cache (the usual case): the sentence says what to do
        assert "HF_HUB_OFFLINE" in hf["availability"] and "huggingface-cli download" in hf["availability"]
        assert any("state-spaces/mamba-130m-hf" in t.value and "HF_HUB_OFFLINE" in t.value for t in at.text)


def test_load_and_unload_a_model(arena_env):
    at = _models_page()
    assert any("No model is loaded yet" in t.value for t in at.text)
    at.selectbox(key="models_choice").set_value("toy-mamba2")
    at.button(key="models_load").click().run()
    assert not at.exception
    assert any("toy-mamba2 is loaded on cpu" in s.value for s in at.success)
    assert len(at.dataframe) == 2  # registry, loaded models
    loaded = at.dataframe[1].value
    assert list(loaded["name"]) == ["toy-mamba2"]
    at.selectbox(key="models_unload_choice").set_value("toy-mamba2")
    at.button(key="models_unload").click().run()
    assert any("toy-mamba2 was unloaded" in s.value for s in at.success)
    assert any("No model is loaded yet" in t.value for t in at.text)


def test_add_local_folder_errors_are_sentences_and_a_valid_folder_is_added(arena_env):
    at = _models_page()
    root = arena_env / "data" / "models"  # the default models folder: <SSM_ARENA_DATA>/models
    root.mkdir(parents=True)
    missing = root / "nowhere"
    at.text_input(key="models_add_folder").set_value("nowhere")  # relative to the models folder
    _submit(at)
    assert [e.value for e in at.error] == [f"The folder '{missing}' does not exist. Check the path and try again."]

    folder = root / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(_tiny_safetensors())
    (folder / "tokenizer.json").write_text("{}")
    at.text_input(key="models_add_folder").set_value(str(folder))
    at.text_input(key="models_add_name").set_value("my-llama")
    _submit(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Added 'my-llama' (transformer)" in s.value for s in at.success)
    table = at.dataframe[0].value
    row = table[table["name"] == "my-llama"].iloc[0]
    assert row["source"] == "local" and row["params"] == "0.00M"  # 6 parameters, read from the header


def test_add_local_folder_outside_the_models_folder_gets_one_sentence_for_any_path(arena_env):
    """A stranger probing server paths learns nothing: existing, missing, a folder with a model and a link out
    of the models folder all get the same refusal."""
    root = arena_env / "data" / "models"
    root.mkdir(parents=True)
    outside = arena_env / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (root / "link").symlink_to(outside)
    at = _models_page()
    answers = set()
    for path in ("/etc", "/no/such/folder", str(outside), "../elsewhere", "link", "~"):
        at.text_input(key="models_add_folder").set_value(path)
        _submit(at)
        answers |= {e.value for e in at.error}
    assert answers == {f"Only folders inside {root.resolve()} can be added here. Copy the model folder there (or set "
                       "SSM_ARENA_MODELS_ROOT before starting the dashboard) and give its name, or add it from a "
                       "terminal with `python -m backend models --add FOLDER`."}
    assert "my-llama" not in set(at.dataframe[0].value["name"])


def test_loss_curves_are_plotted_when_a_bundled_model_has_loss_jsonl(arena_env, monkeypatch, tmp_path):
    bundled = tmp_path / "assets"
    (bundled / "toy-mamba").mkdir(parents=True)
    (bundled / "toy-mamba" / "loss.jsonl").write_text(
        "\n".join(json.dumps({"step": i, "loss": 5.0 / (i + 1), "val_loss": 5.5 / (i + 1)}) for i in range(5)) + "\n")
    monkeypatch.setattr(registry, "BUNDLED_DIR", bundled)
    at = _models_page()
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    assert sorted(t["name"] for t in spec["data"]) == ["toy-mamba, loss", "toy-mamba, val_loss"]


def _submit(at: AppTest) -> None:
    # AppTest has no wrapper for form submit buttons in every version: find it by label among buttons.
    btn = next(b for b in at.button if b.label == "Add model")
    btn.click().run()
    assert not at.exception, at.exception


def _tiny_safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\0" * 24
