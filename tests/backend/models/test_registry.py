import json
import shutil

import pytest

from backend.errors import CorruptModelError, UnknownModelError
from backend.models import registry


def test_builtins_and_pairs():
    specs = {s.name: s for s in registry.list_specs()}
    for name, fam in [("toy-mamba", "mamba"), ("toy-mamba2", "mamba2"), ("toy-transformer", "transformer")]:
        assert specs[name].family == fam and specs[name].source == "bundled"
    for m, p in [("130m", "160m"), ("370m", "410m"), ("790m", "1b"), ("1.4b", "1.4b"), ("2.8b", "2.8b")]:
        s = specs[f"state-spaces/mamba-{m}-hf"]
        assert s.family == "mamba" and s.source == "hf" and s.paired_with == f"EleutherAI/pythia-{p}"
        assert specs[s.paired_with].family == "transformer"
    assert any(s.family == "mamba2" and s.source == "hf" for s in specs.values())
    ssm, tr = registry.default_pair()
    assert specs[ssm].family in ("mamba", "mamba2") and specs[tr].family == "transformer"


def test_unknown_name_is_a_sentence():
    with pytest.raises(UnknownModelError, match="no model named 'nope'"):
        registry.get_spec("nope")


def test_bundled_without_folder_is_placeholder(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "none")
    spec = registry.get_spec("toy-mamba")
    assert spec.placeholder
    ok, why = registry.availability(spec)
    assert ok and "placeholder" in why


def test_add_local_valid_and_persisted(tiny_dirs, tmp_path):
    folder = tmp_path / "my-mamba"
    shutil.copytree(tiny_dirs["mamba"], folder)
    spec = registry.add_local_model(folder)
    assert (spec.name, spec.family, spec.source) == ("my-mamba", "mamba", "local")
    assert registry.get_spec("my-mamba") == spec
    assert registry.availability(spec)[0]
    assert json.loads((registry.data_dir() / "models.json").read_text())[0]["name"] == "my-mamba"
    spec2 = registry.add_local_model(tiny_dirs["gpt_neox"], name="neox")
    assert spec2.family == "transformer" and spec2.train_context == 2048
    registry.remove_local_model("my-mamba")
    with pytest.raises(UnknownModelError):
        registry.get_spec("my-mamba")
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    "breakage, match",
    [
        ("no_config", "no config.json"),
        ("bad_json", "could not be parsed"),
        ("unknown_type", "model_type 'bert'"),
        ("no_weights", "no weights"),
        ("no_tokenizer", "no tokenizer"),
        ("missing_folder", "does not exist"),
    ],
)
def test_add_local_corrupt(tiny_dirs, tmp_path, breakage, match):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_dirs["llama"], folder)
    if breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "bad_json":
        (folder / "config.json").write_text("{not json")
    elif breakage == "unknown_type":
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    elif breakage == "no_weights":
        (folder / "model.safetensors").unlink()
    elif breakage == "no_tokenizer":
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (folder / f).unlink()
    elif breakage == "missing_folder":
        shutil.rmtree(folder)
    with pytest.raises(CorruptModelError, match=match):
        registry.add_local_model(folder)
    assert not (registry.data_dir() / "models.json").exists()


def test_local_folder_removed_later_is_unavailable(tiny_dirs, tmp_path):
    folder = tmp_path / "gone"
    shutil.copytree(tiny_dirs["mamba2"], folder)
    spec = registry.add_local_model(folder)
    shutil.rmtree(folder)
    ok, why = registry.availability(spec)
    assert not ok and "does not exist" in why


def test_hf_id_unavailable_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = registry.get_spec("state-spaces/mamba-130m-hf")
    ok, why = registry.availability(spec)
    assert not ok
    assert "HF_HUB_OFFLINE" in why and "huggingface-cli download state-spaces/mamba-130m-hf" in why


def test_bundled_folder_reads_train_context(tiny_dirs, monkeypatch, tmp_path):
    bundled = tmp_path / "models"
    shutil.copytree(tiny_dirs["mamba"], bundled / "toy-mamba")
    (bundled / "toy-mamba" / "train_summary.json").write_text(json.dumps({"config": {"seq_len": 1024}}))
    monkeypatch.setattr(registry, "BUNDLED_DIR", bundled)
    spec = registry.get_spec("toy-mamba")
    assert not spec.placeholder and spec.train_context == 1024
    assert spec.location == str(bundled / "toy-mamba")
    assert registry.availability(spec) == (True, f"Bundled with the dashboard ({bundled / 'toy-mamba'}).")
    assert registry.get_spec("toy-transformer").placeholder  # its folder is still missing


def test_bundled_hybrid_is_listed_paired_and_selected_by_default_only_once_its_folder_is_there(monkeypatch, tmp_path,
                                                                                               tiny_dirs):
    from backend.arena.choices import default_selection, model_choices
    from backend.experiments.config import default_models
    from tests.backend.helpers import build_tiny_hybrid

    bundled = tmp_path / "models"
    bundled.mkdir()
    monkeypatch.setattr(registry, "BUNDLED_DIR", bundled)
    assert "toy-hybrid" not in {s.name for s in registry.list_specs()}  # no placeholder stands in for it
    build_tiny_hybrid(bundled / "toy-hybrid")
    spec = registry.get_spec("toy-hybrid")
    assert (spec.family, spec.source, spec.paired_with, spec.placeholder) == ("hybrid", "bundled", "toy-transformer",
                                                                              False)
    assert registry.availability(spec)[0]
    assert "toy-hybrid" in model_choices().names
    assert default_selection(model_choices()) == ["toy-mamba", "toy-transformer"]  # offered, not preselected
    # the experiments' defaults compare models trained alike: the hybrid joins them only on the trio's recipe
    for name in ("toy-mamba", "toy-transformer"):
        shutil.copytree(tiny_dirs["mamba" if name == "toy-mamba" else "llama"], bundled / name)
        (bundled / name / "train_summary.json").write_text(json.dumps({"tokens_seen": 42}))
    (bundled / "toy-hybrid" / "train_summary.json").write_text(json.dumps({"tokens_seen": 24, "mixture": "context"}))
    assert default_models() == ["toy-mamba", "toy-transformer"]
    (bundled / "toy-hybrid" / "train_summary.json").write_text(json.dumps({"tokens_seen": 42}))
    assert default_models() == ["toy-mamba", "toy-transformer", "toy-hybrid"]
