"""The bundled checkpoints work with plain transformers, as a researcher would first try them:
`AutoModelForCausalLM.from_pretrained(folder)` with no arguments, then `generate`, on the CPU.

Their config.json says "dtype": "float32": transformers loads in the config's dtype by default, and in bfloat16
(the dtype the weights are stored in) Hugging Face's own Mamba slow path fails on a CPU ("expected m1 and m2 to
have the same dtype"). The dashboard itself always passes a dtype (backend/models/loading.py: bfloat16 on a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "assets" / "models"
NAMES = ["toy-mamba", "toy-mamba2", "toy-transformer"]
PROMPT = "Tell me about the Silver Bell Foundry.\n"  # a training-world organisation (TEMPLATES["tell"])


def _trained(name: str) -> bool:
    return (MODELS / name / "model.safetensors").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_config_dtype_is_one_that_loads_on_every_device(name):
    if not _trained(name):
        pytest.skip(f"{name} is not trained on this checkout")
    cfg = json.loads((MODELS / name / "config.json").read_text())
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "float32"


@pytest.mark.parametrize("name", NAMES)
def test_plain_from_pretrained_then_generate_on_cpu(name, monkeypatch):
    if not _trained(name):
        pytest.skip(f"{name} is not trained on this checkout")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(MODELS / name)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)  # no dtype, no device: the defaults
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    ids = tok(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert out.shape[1] > ids["input_ids"].shape[1]
    # a trained model continues its training format: the article names the organisation it was asked about
    assert "Silver Bell" in text, text
