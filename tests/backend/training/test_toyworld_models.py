"""The bundled trio in assets/models: loads through the registry on CPU, generates, fits the size rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.training.trio import MODEL_NAMES

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "models"
pytestmark = pytest.mark.skipif(not all((ASSETS / n / "model.safetensors").exists() for n in MODEL_NAMES),
                                reason="the bundled checkpoints are not in assets/models")


def test_checkpoints_are_matched_small_and_documented():
    from safetensors import safe_open

    counts = {}
    for name in MODEL_NAMES:
        folder = ASSETS / name
        assert (folder / "model.safetensors").stat().st_size <= 16 * 2**20
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            counts[name] = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())
        summary = json.loads((folder / "train_summary.json").read_text())
        assert summary["n_params"] == counts[name]
        assert summary["config"]["seq_len"] == 1024
        rows = [json.loads(x) for x in (folder / "loss.jsonl").read_text().splitlines()]
        assert rows[-1]["loss"] < rows[0]["loss"]
        card = (folder / "README.md").read_text()
        assert f"{summary['n_params']:,}" in card and "python -m backend train" in card
    assert max(counts.values()) / min(counts.values()) <= 1.10
    tokens = {json.loads((ASSETS / n / "train_summary.json").read_text())["tokens_seen"] for n in MODEL_NAMES}
    assert len(tokens) == 1  # same number of tokens for all three
    tok_files = {(ASSETS / n / "tokenizer.json").read_text() for n in MODEL_NAMES}
    assert len(tok_files) == 1  # one shared tokenizer


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bundled_checkpoint_loads_through_the_registry_and_generates_on_cpu(name):
    from backend.generation.interface import GenSettings
    from backend.toyworld import TEMPLATES, core_world

    try:
        from backend.models.loading import load_generator
        from backend.models.registry import get_spec
    except ImportError:  # registry / loading not there: load the folder directly
        from backend.training.batched import load_batched

        gen = load_batched(ASSETS / name)
    else:
        spec = get_spec(name)
        assert not spec.placeholder and Path(spec.location).resolve() == (ASSETS / name).resolve()
        gen = load_generator(spec, device="cpu")
    prompt = TEMPLATES["tell"].format(name=core_world().people[0].name)
    res = gen.generate(prompt, GenSettings(max_new_tokens=12, stop_at_eos=False))
    assert res.metrics.new_tokens == 12 and len(res.text.split()) >= 3
    [(lp, _)] = gen.loglikelihood([("Question: Where is it?\nAnswer:", " Dunmere\n")])
    assert lp < 0
