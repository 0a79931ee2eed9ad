"""The training script: a few lockstep steps of the tiny trio on CPU lower the loss; the schedule is exact."""

from __future__ import annotations

import json

import pytest

from backend.cli import main as cli_main
from backend.training.loop import TrainConfig, decay_start, lr_at, total_for_decay_at, train
from backend.training.trio import MODEL_NAMES, build_model, n_params


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

    from backend.generation.interface import GenSettings
    from backend.training.batched import load_batched

    gen = load_batched(tmp_path / "toy-mamba2")
    res = gen.generate("Tell me about Tom.\n", GenSettings(max_new_tokens=4, stop_at_eos=False))
    assert res.metrics.new_tokens == 4 and res.finish_reason == "length"
    [(lp, _)] = gen.loglikelihood([("Question: x\nAnswer:", " 12\n")])
    assert lp < 0


def test_plan_total_fits_the_slowest_model_into_the_budget_left():
    from backend.training.plan import plan_total

    posts = [{"elapsed_s": 10.0, "ms_per_step": 100.0}, {"elapsed_s": 12.0, "ms_per_step": 250.0},
             {"elapsed_s": 9.0, "ms_per_step": 40.0}]
    # 100 s budget, the last probe ended at 12 s: 88 s * 0.97 left / 0.25 s per step = 341 more steps
    assert plan_total(posts, 100.0, 40) == 40 + int(88 * 0.97 / 0.25)
    assert plan_total(posts, 5.0, 40) == 40  # budget already spent: no steps beyond the probe
    with pytest.raises(ValueError):
        plan_total([], 100.0, 40)


def test_rendezvous_every_process_gets_the_same_posts(tmp_path):
    from backend.training.plan import Rendezvous

    a = Rendezvous(str(tmp_path), ["m1", "m2"], timeout_s=5)
    b = Rendezvous(str(tmp_path), ["m1", "m2"], timeout_s=5)
    a.post("m1", 3.0, 120.0, step=4)
    b.post("m2", 2.5, 80.0, step=4)
    assert a.gather() == b.gather() == [
        {"model": "m1", "elapsed_s": 3.0, "ms_per_step": 120.0, "step": 4},
        {"model": "m2", "elapsed_s": 2.5, "ms_per_step": 80.0, "step": 4}]
    with pytest.raises(TimeoutError, match="m3"):
        Rendezvous(str(tmp_path), ["m1", "m3"], timeout_s=0.3).gather()


def test_stream_file_is_made_once_and_reused(tmp_path):
    import numpy as np

    from backend.training.plan import load_or_make_stream

    calls = []

    def make():
        calls.append(1)
        return np.arange(10, dtype=np.uint16)

    f = tmp_path / "s.npy"
    first = load_or_make_stream(str(f), make)
    again = load_or_make_stream(str(f), make)
    assert calls == [1] and np.array_equal(first, again) and not list(tmp_path.glob(".*tmp"))


def test_parallel_training_agrees_on_one_step_count_and_one_stream(tmp_path):
    """train_all --parallel: one process per model, same stream file, same planned step count."""
    out, models = tmp_path / "out", tmp_path / "models"
    rc = cli_main(["train-all", "--out", str(out), "--tag", "cpu", "--preset", "tiny", "--seq-len", "32", "--batch-size", "4",
               "--n-tokens", "20000", "--parallel", "--time-budget", "12", "--plan-after", "4", "--warmup-steps",
               "10", "--no-eval", "--device", "cpu", "--models-dir", str(models), "--stream-file",
               str(tmp_path / "stream.npy"), "--log-every", "2"])
    assert rc == 0
    summaries = [json.loads((models / m / "train_summary.json").read_text()) for m in MODEL_NAMES]
    steps = {s["steps"] for s in summaries}
    assert len(steps) == 1 and steps.pop() > 4
    assert all(s["plan"]["total"] == s["steps"] and len(s["plan"]["posts"]) == 3 for s in summaries)
    assert len({s["stream_tokens"] for s in summaries}) == 1
    records = [json.loads(line) for line in (out / "train_cpu.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("measurement") == 3
    assert sorted(p.name for p in out.glob("*.tar.gz")) == sorted(f"{m}.tar.gz" for m in MODEL_NAMES)


def test_parallel_training_with_fixed_steps_and_a_curriculum(tmp_path):
    """--parallel with --steps (a later seed at the first seed's step count): no rendezvous, each process trains
    exactly that many steps on the same two streams (the context mixture, then the long documents). --no-pack
    (the size ladder's calls) leaves the checkpoints unpacked: no archive in --out."""
    out, models = tmp_path / "out", tmp_path / "models"
    names = ["toy-hybrid", "toy-transformer-deep"]
    rc = cli_main(["train-all", "--out", str(out), "--tag", "cpu", "--preset", "tiny", "--seq-len", "32",
                   "--batch-size", "4", "--n-tokens", "20000", "--parallel", "--steps", "6", "--warmup-steps", "2",
                   "--no-eval", "--device", "cpu", "--models-dir", str(models), "--models", ",".join(names),
                   "--mixture", "context", "--long-seq-len", "64", "--long-frac", "0.34", "--long-every", "1",
                   "--seed", "2", "--no-pack",
                   "--stream-file", str(tmp_path / "stream.npy"), "--log-every", "2"])
    assert rc == 0
    summaries = [json.loads((models / m / "train_summary.json").read_text()) for m in names]
    assert all(s["steps"] == 6 and "plan" not in s and s["seed"] == 2 for s in summaries)
    assert all(s["long_phase"] == {"seq_len": 64, "batch_size": 2, "start_step": 3, "every": 1}
               for s in summaries)
    assert len({s["config"]["long_stream_file"] for s in summaries}) == 1
    assert all(s["tokens_seen"] == 3 * 4 * 32 + 3 * 2 * 64 for s in summaries)
    assert not list(out.glob("*.tar.gz")) and (out / "train_cpu.jsonl").is_file()
    assert all((models / m / "model.safetensors").is_file() for m in names)


def test_train_speed_records_each_path(tmp_path, capsys):
    out = tmp_path / "speed.jsonl"
    assert cli_main(["train-speed", "--preset", "tiny", "--seq-len", "32", "--batch-sizes", "2", "--steps", "1", "--warmup", "0",
                 "--device", "cpu", "--models", "toy-mamba2,toy-transformer", "--also-hf", "--jsonl", str(out)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last["ms_per_step"]) == {"toy-mamba2/b2/torch-chunked-ssd", "toy-mamba2/b2/hf-torch",
                                        "toy-transformer/b2/sdpa"}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    meas = [r["data"] for r in rows if r["type"] == "measurement"]
    assert len(meas) == 3 and all(m["ms_per_step"] > 0 and m["error"] is None for m in meas)
    fast = next(m for m in meas if m["train_path"] == "torch-chunked-ssd")
    assert fast["path_check"]["ok"] and fast["path_check"]["loss_rel_err"] < 1e-4
