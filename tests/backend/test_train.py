"""The training script: a few lockstep steps of the tiny trio on CPU lower the loss; the schedule is exact."""

from __future__ import annotations

import json

import pytest

from backend.train import TrainConfig, decay_start, lr_at, total_for_decay_at, train
from backend.train_models import MODEL_NAMES, build_model, n_params


def test_schedule_warmup_constant_decay_and_reproducible_total():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, decay_frac=0.2, min_lr_frac=0.1)
    assert lr_at(0, None, cfg) == pytest.approx(0.1) and lr_at(9, None, cfg) == 1.0
    assert lr_at(500, None, cfg) == 1.0  # timed run before the decay is triggered
    total = 1000
    assert lr_at(decay_start(total, cfg) - 1, total, cfg) == 1.0
    assert lr_at(total - 1, total, cfg) == pytest.approx(0.1, abs=0.01)
    for step in (1, 37, 800, 1234):
        n = total_for_decay_at(step, cfg)
        assert decay_start(n, cfg) >= step and decay_start(n - 1, cfg) < step


def test_small_preset_is_parameter_matched_and_fits_16_mib_in_bf16():
    counts = {}
    for name in MODEL_NAMES:
        counts[name] = n_params(build_model(name, "small"))
    lo, hi = min(counts.values()), max(counts.values())
    assert hi / lo <= 1.10, counts
    assert hi * 2 <= 16 * 2**20, counts  # bf16 bytes


def test_tiny_training_lowers_the_loss_and_saves_loadable_models(tmp_path):
    cfg = TrainConfig(preset="tiny", steps=14, seq_len=32, batch_size=4, n_tokens=20_000, workers=1,
                      warmup_steps=2, lr=3e-3, log_every=1, out_dir=str(tmp_path), device="cpu",
                      results=str(tmp_path / "train.jsonl"))
    summaries = train(cfg, log=lambda s: None)
    assert [s["model"] for s in summaries] == list(MODEL_NAMES)
    for s in summaries:
        rows = [json.loads(line) for line in (tmp_path / s["model"] / "loss.jsonl").read_text().splitlines()]
        assert len(rows) == 14
        first = sum(r["loss"] for r in rows[:3]) / 3
        last = sum(r["loss"] for r in rows[-3:]) / 3
        assert last < first - 0.3, (s["model"], first, last)
        assert s["tokens_seen"] == 14 * 4 * 32
    records = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("measurement") == 3

    from backend.interface import GenSettings
    from backend.toyworld.batched import load_batched

    gen = load_batched(tmp_path / "toy-mamba2")
    res = gen.generate("Tell me about Tom.\n", GenSettings(max_new_tokens=4, stop_at_eos=False))
    assert res.metrics.new_tokens == 4 and res.finish_reason == "length"
    [(lp, _)] = gen.loglikelihood([("Question: x\nAnswer:", " 12\n")])
    assert lp < 0
