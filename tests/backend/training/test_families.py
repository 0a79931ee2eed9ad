"""The five training families (issue 14): parameter-matched per preset, the trio's configs unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from backend.training.trio import FAMILIES_ALL, FAMILY, MODEL_NAMES, PRESETS, build_model, model_config

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "models"


def _count(name: str, preset: str) -> int:
    with torch.device("meta"):  # no memory, no init: only the shapes
        m = AutoModelForCausalLM.from_config(model_config(name, preset))
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_parameter_matched_within_ten_percent(preset):
    counts = {n: _count(n, preset) for n in FAMILIES_ALL}
    assert max(counts.values()) / min(counts.values()) <= 1.10, counts


def test_the_ladder_grows_about_4x_and_14x_in_width_only_and_small_fits_16_mib_in_bf16():
    for name in FAMILIES_ALL:
        small, medium, large = (_count(name, p) for p in ("small", "medium", "large"))
        assert small * 2 <= 16 * 2**20, (name, small)
        assert 3 <= medium / small <= 4.5 and 12 <= large / small <= 15, (name, small, medium, large)
    depths = {k: [PRESETS[p][k] for p in ("small", "medium", "large")] for k in ("ssm_layers", "attn_layers",
                                                                                 "hyb_layers")}
    assert all(len(set(v)) == 1 for v in depths.values()), depths  # depth sets a step's time (trio.py)


def test_depth_matched_transformer_has_the_ssms_depth_and_the_hybrid_a_few_attention_layers():
    for preset, p in PRESETS.items():
        deep = model_config("toy-transformer-deep", preset)
        assert deep.num_hidden_layers == model_config("toy-mamba2", preset).num_hidden_layers == p["ssm_layers"]
        hyb = model_config("toy-hybrid", preset)
        kinds = hyb.layers_block_type  # "full_attention" / "linear_attention" (older transformers: "attention")
        attn = [i for i, k in enumerate(kinds) if k in ("attention", "full_attention")]
        assert attn == p["hyb_attn"] and len(attn) >= 1
        if preset != "tiny":  # a few attention layers among Mamba-2 ones (tiny has two layers: one of each)
            assert len(attn) <= len(kinds) // 3, (preset, kinds)
    assert FAMILY["toy-hybrid"] == "hybrid" and FAMILY["toy-transformer-deep"] == "transformer"
    assert set(MODEL_NAMES) < set(FAMILIES_ALL)


@pytest.mark.skipif(not all((ASSETS / n / "config.json").exists() for n in MODEL_NAMES), reason="no bundled models")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_bundled_trio_configs_are_unchanged(name):
    bundled = json.loads((ASSETS / name / "config.json").read_text())
    ours = model_config(name, "small").to_dict()
    for key in ("hidden_size", "num_hidden_layers", "state_size", "intermediate_size", "num_attention_heads",
                "num_heads", "head_dim", "expand", "vocab_size", "max_position_embeddings"):
        if key in bundled:
            assert ours[key] == bundled[key], key


@pytest.mark.parametrize("name", FAMILIES_ALL)
def test_tiny_families_run_forward_and_backward(name):
    m = build_model(name, "tiny", seed=0, vocab_size=64)
    x = torch.randint(2, 64, (2, 9))
    out = m(input_ids=x, use_cache=False).logits
    assert out.shape == (2, 9, 64) and torch.isfinite(out).all()
    out.float().logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="choose one of"):
        model_config("toy-nothing")
