"""Sweep logic, simulated out-of-memory handling and the records the benchmark writes (CPU)."""

import json

import pytest
import torch

from backend.bench.isolate import run_model_in_child
from backend.bench.shapes import Shape, _kw, expand_models
from backend.bench.sweep import Sweep, SweepConfig, is_oom, plan_points, run_sweep
from store import RecordWriter
from store.records import iter_records

TINY = {
    "tiny-neox": Shape("tiny-neox", "transformer", "GPTNeoXConfig",
                       _kw(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=96)),
    "tiny-mamba": Shape("tiny-mamba", "mamba", "MambaConfig",
                        _kw(vocab_size=64, hidden_size=32, num_hidden_layers=2, state_size=4, expand=2)),
}


class FakeModel:
    config = type("C", (), {"max_position_embeddings": None})()

    def parameters(self):
        return iter(())


def fake_load(shape, device, dtype):
    return FakeModel(), "fake-kernel"


def fake_metrics(batch, prompt_len, new_tokens):
    return {"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new_tokens, "path": "fake", "cache_kind": "kv",
            "prefill_ms": 1.0 * prompt_len, "ttft_ms": 1.0 * prompt_len, "tpot_ms": 2.0, "tpot_p90_ms": 3.0,
            "decode_tok_s": 500.0, "decode_tok_s_batch": 500.0 * batch, "total_ms": 10.0, "e2e_tok_s": 1.0,
            "peak_mem_bytes": 1, "peak_mem_kind": "cpu_rss", "cache_bytes": 1, "warmup": 1, "repeats": 1}


def cfg(**kw):
    base = dict(models=["tiny-neox", "tiny-mamba"], prompt_lens=[16, 32, 64, 128], new_tokens=[4], long_from=64,
                batches=[1, 2, 4, 8], batch_prompt_len=16, batch_new_tokens=4, repeats=1, hf_baseline=False,
                eager_baseline=False, device="cpu")
    base.update(kw)
    return SweepConfig(**base)


def test_plan_order_puts_short_contexts_then_batches_then_baselines_then_long():
    plans = plan_points(cfg(hf_baseline=True, eager_baseline=True))
    phases = [p.phase for p in plans]
    assert phases == ["context", "context", "batch", "batch", "batch", "batch", "hf-generate", "eager", "long", "long"]
    assert [p.prompt_len for p in plans if p.phase == "context"] == [16, 32]
    assert [p.batch for p in plans if p.phase == "batch"] == [1, 2, 4, 8]


def test_simulated_oom_is_recorded_and_the_sweep_goes_on(tmp_path):
    calls = []

    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        calls.append((batch, prompt_len))
        if batch >= 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if prompt_len >= 128:
            raise RuntimeError("CUDA error: out of memory")
        return fake_metrics(batch, prompt_len, new_tokens)

    writer = RecordWriter(tmp_path / "b.jsonl")
    sweep = Sweep(cfg(), writer, shapes=TINY, load_model=fake_load, measure_point=measure)
    sweep.run()
    rows = sweep.rows
    for model in TINY:
        mine = [r for r in rows if r["model"] == model]
        batch = [(r["batch"], r["status"]) for r in mine if r["phase"] == "batch"]
        # 8 is never tried after 4 ran out of memory; 3 (between 2 and 4) is tried at the end
        assert batch == [(1, "ok"), (2, "ok"), (4, "oom"), (3, "ok")]
        assert [r.get("refined") for r in mine if r["phase"] == "batch"] == [None, None, None, True]
        (mb,) = [r for r in mine if r["metric"] == "max_batch"]
        assert mb["value"] == 3 and mb["oom_at"] == 4 and mb["capped"] is False and mb["stopped_by"] == "oom"
        long = [(r["prompt_tokens"], r["status"]) for r in mine if r["phase"] == "long"]
        assert long == [(64, "ok"), (128, "oom")]
        assert "out of memory" in [r for r in mine if r["status"] == "oom"][0]["error"].lower()
    assert (8, 16) not in calls
    recs = [rec for _, rec, _ in iter_records(tmp_path / "b.jsonl")]
    assert recs[-1]["type"] == "run_end" and recs[-1]["status"] == "completed"
    assert recs[-1]["summary"]["oom"] == 4


@pytest.mark.parametrize("refine, tried, largest, oom_at", [
    (2, [64, 128, 96, 112], 96, 112),  # bisection in multiples of 8: 96 fits, 112 does not
    (1, [64, 128, 96], 96, 128),
    (0, [64, 128], 64, 128)])  # refine_batch 0: the power-of-two sweep alone
def test_the_largest_batch_is_refined_by_bisection(tmp_path, refine, tried, largest, oom_at):
    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        if batch > 100:  # the cache holds 100 sequences
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return fake_metrics(batch, prompt_len, new_tokens)

    c = cfg(models=["tiny-mamba"], prompt_lens=[16], batches=[64, 128, 256], refine_batch=refine)
    sweep = Sweep(c, RecordWriter(tmp_path / "r.jsonl"), shapes=TINY, load_model=fake_load, measure_point=measure)
    sweep.run()
    assert [r["batch"] for r in sweep.rows if r["phase"] == "batch"] == tried
    (mb,) = [r for r in sweep.rows if r["metric"] == "max_batch"]
    assert (mb["value"], mb["oom_at"]) == (largest, oom_at)


def test_longer_prompts_are_skipped_after_an_oom_and_errors_do_not_stop_the_sweep(tmp_path):
    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        if prompt_len == 32:
            raise torch.cuda.OutOfMemoryError("out of memory")
        if batch == 2:
            raise ValueError("some other failure")
        return fake_metrics(batch, prompt_len, new_tokens)

    sweep = Sweep(cfg(models=["tiny-neox"]), RecordWriter(tmp_path / "b.jsonl"), shapes=TINY, load_model=fake_load,
                  measure_point=measure)
    sweep.run()
    statuses = {(r["phase"], r["batch"], r["prompt_tokens"]): r["status"] for r in sweep.rows}
    assert statuses[("context", 1, 32)] == "oom"
    assert ("long", 1, 64) not in statuses  # longer than a prompt that ran out of memory
    assert statuses[("batch", 2, 16)] == "error" and statuses[("batch", 4, 16)] == "ok"
    assert any("shorter prompt ran out of memory" in s for s in sweep.not_run)


def test_time_budget_stops_starting_points(tmp_path):
    sweep = Sweep(cfg(budget_s=0.0), RecordWriter(tmp_path / "b.jsonl"), shapes=TINY, load_model=fake_load,
                  measure_point=lambda *a, **k: pytest.fail("no point may start"))
    sweep.run()
    assert sweep.rows == [] and len(sweep.not_run) == 2


def test_is_oom():
    assert is_oom(torch.cuda.OutOfMemoryError("x"))
    assert is_oom(RuntimeError("HIP out of memory"))
    assert not is_oom(ValueError("out of memory"))
    assert not is_oom(RuntimeError("shape mismatch"))


def test_config_and_model_names_are_checked():
    with pytest.raises(ValueError, match="at least 2 new tokens"):
        cfg(new_tokens=[1]).validate()
    with pytest.raises(ValueError, match="Unknown benchmark model"):
        expand_models(["gpt-5"])
    assert expand_models(["130m"]) == ["pythia-160m", "mamba-130m", "mamba2-130m"]


def test_real_tiny_models_write_complete_rows(tmp_path):
    """One real sweep on CPU: both families through the same loop, baselines labelled, metadata on rows."""
    out = tmp_path / "bench.jsonl"
    c = cfg(prompt_lens=[8, 24], long_from=1000, batches=[1, 2], batch_prompt_len=8, hf_baseline=True,
            eager_baseline=True, baseline_prompt_len=8, baseline_new_tokens=3)
    run_id, rows = run_sweep(c, RecordWriter(out), shapes=TINY)
    ok = [r for r in rows if r["status"] == "ok" and r["metric"] == "point"]
    assert {r["phase"] for r in ok} == {"context", "batch", "hf-generate", "eager"}
    for r in ok:
        assert r["device_kind"] == "cpu" and r["peak_mem_kind"] == "cpu_rss"
        assert r["versions"] and r["path"] and r["repeats"] >= 1 and r["warmup"] == 1
        assert r["prefill_ms"] > 0 and r["tpot_ms"] > 0 and r["decode_tok_s"] > 0
        assert r["decode_tok_s_batch"] == pytest.approx(r["decode_tok_s"] * r["batch"])
    own = {r["model"]: r["path"] for r in ok if r["phase"] == "context"}
    assert own["tiny-neox"] == "sdpa+static"
    assert {r["path"] for r in ok if r["phase"] == "hf-generate"} == {"hf-generate"}
    assert {r["path"] for r in ok if r["phase"] == "eager"} == {"eager:sdpa"}  # transformers only
    ctx = {(r["model"], r["prompt_tokens"]): r["cache_bytes"] for r in ok if r["phase"] == "context"}
    assert ctx[("tiny-neox", 24)] > ctx[("tiny-neox", 8)]  # KV cache grows with context
    assert ctx[("tiny-mamba", 24)] == ctx[("tiny-mamba", 8)]  # SSM state does not
    recs = [rec for _, rec, _ in iter_records(out)]
    assert recs[0]["type"] == "run" and recs[0]["kind"] == "bench" and recs[0]["run_id"] == run_id
    assert sum(r["type"] == "measurement" for r in recs) == len(rows)
    json.dumps(recs)  # everything written is plain JSON


def test_batch_sweep_cut_by_the_time_budget_is_labelled(tmp_path, monkeypatch):
    import types

    import backend.bench.sweep as sweep_mod

    clock = [0.0]
    monkeypatch.setattr(sweep_mod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        clock[0] += 10.0  # each point "takes" 10 s
        return fake_metrics(batch, prompt_len, new_tokens)

    sweep = Sweep(cfg(models=["tiny-neox"], budget_per_model_s=25.0), RecordWriter(tmp_path / "b.jsonl"),
                  shapes=TINY, load_model=fake_load, measure_point=measure)
    sweep.run()
    ran = [(r["phase"], r["batch"]) for r in sweep.rows if r["metric"] == "point"]
    assert ran == [("context", 1), ("context", 1), ("batch", 1)]  # at 30 s the budget is spent
    (mb,) = [r for r in sweep.rows if r["metric"] == "max_batch"]
    assert mb["value"] == 1 and mb["stopped_by"] == "time_budget" and mb["capped"] is False


def test_a_failing_ssm_fast_path_falls_back_to_the_eager_loop_and_says_so(tmp_path):
    kinds = []

    def make_stepper(kind, model, family, device, new_tokens):
        kinds.append(kind)
        return kind

    def measure(model, make, *, batch, prompt_len, new_tokens, device, **kw):
        if make() == "best":
            raise RuntimeError("triton kernel failed to compile")
        return {**fake_metrics(batch, prompt_len, new_tokens), "path": "hf-torch"}

    def load(shape, device, dtype):
        return FakeModel(), "triton"

    sweep = Sweep(cfg(models=["tiny-mamba"]), RecordWriter(tmp_path / "b.jsonl"), shapes=TINY, load_model=load,
                  make_stepper=make_stepper, measure_point=measure)
    sweep.run()
    first, retry = sweep.rows[0], sweep.rows[1]
    assert first["status"] == "error" and "triton kernel" in first["error"] and first["kernel_path"] == "triton"
    assert retry["status"] == "ok" and retry["kernel_path"] == "hf-torch" and retry["path"] == "hf-torch"
    assert all(r["status"] == "ok" for r in sweep.rows[1:])
    assert kinds[0] == "best" and set(kinds[1:]) == {"eager"}
    assert any("fast path failed" in s for s in sweep.not_run)


def test_rounds_interleave_the_models_and_label_each_row(tmp_path):
    """--rounds 3: A B A B A B, each row with its pass, so a model's median spans the same time as the other's."""
    order = []

    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        order.append(model.name)
        return fake_metrics(batch, prompt_len, new_tokens)

    def load(shape, device, dtype):
        m = FakeModel()
        m.name = shape.name
        m.config = type("C", (), {"max_position_embeddings": 96 if shape.family == "transformer" else None})()
        return m, "fake-kernel"

    c = cfg(prompt_lens=[16, 128], long_from=1000, batches=[1], rounds=3)  # 128: past tiny-neox's 96 positions
    sweep = Sweep(c, RecordWriter(tmp_path / "r.jsonl"), shapes=TINY, load_model=load, measure_point=measure)
    sweep.run()
    end = [rec for _, rec, _ in iter_records(tmp_path / "r.jsonl")][-1]
    assert end["summary"]["not_run"] == ["tiny-neox context B=1 L=128 N=4 (beyond max_position_embeddings=96)"]
    runs = [m for i, m in enumerate(order) if i == 0 or order[i - 1] != m]  # consecutive points of one model
    assert runs == ["tiny-neox", "tiny-mamba"] * 3
    points = [(r["model"], r["round"]) for r in sweep.rows
              if r["metric"] == "point" and r["phase"] == "context" and r["prompt_tokens"] == 16]
    assert points == [(m, k) for k in range(3) for m in ("tiny-neox", "tiny-mamba")]
    with pytest.raises(ValueError, match="at least 1 round"):
        cfg(rounds=0).validate()


def test_isolated_children_survive_a_crash_of_one_model(tmp_path, monkeypatch):
    """Each model in its own process; a hard crash during mamba's batch 2 is recorded and the sweep goes on."""
    shapes = {"tiny-mamba": TINY["tiny-mamba"], "tiny-neox": TINY["tiny-neox"]}
    monkeypatch.setenv("SSM_ARENA_BENCH_CRASH_AT", "tiny-mamba:batch:2:8")
    c = cfg(models=list(shapes), prompt_lens=[8], long_from=1000, batches=[1, 2, 4], batch_prompt_len=8,
            new_tokens=[3], batch_new_tokens=3, isolate=True)
    out = tmp_path / "iso.jsonl"
    sweep = Sweep(c, RecordWriter(out), shapes=shapes, run_model=run_model_in_child)
    sweep.run()
    got = [(r["model"], r["phase"], r["batch"], r["status"]) for r in sweep.rows if r["metric"] == "point"]
    assert got == [("tiny-mamba", "context", 1, "ok"), ("tiny-mamba", "batch", 1, "ok"),
                   ("tiny-mamba", "batch", 2, "error"),
                   ("tiny-neox", "context", 1, "ok"), ("tiny-neox", "batch", 1, "ok"), ("tiny-neox", "batch", 2, "ok"),
                   ("tiny-neox", "batch", 4, "ok")]
    crash = [r for r in sweep.rows if r["status"] == "error"][0]
    assert "died (exit code 134)" in crash["error"]
    mb = {r["model"]: r for r in sweep.rows if r["metric"] == "max_batch"}
    assert mb["tiny-mamba"]["value"] == 1 and mb["tiny-mamba"]["stopped_by"] == "error"
    assert mb["tiny-neox"]["value"] == 4 and mb["tiny-neox"]["stopped_by"] == "end_of_list"
    recs = [rec for _, rec, _ in iter_records(out)]
    assert {rec["run_id"] for rec in recs} == {sweep.run_id}
    assert recs[-1]["type"] == "run_end" and recs[-1]["status"] == "completed"


def _clocked(monkeypatch, cost):
    """Fake clock: each measured point advances it by cost(batch, prompt_len) seconds."""
    import types

    import backend.bench.sweep as sweep_mod

    clock = [0.0]
    monkeypatch.setattr(sweep_mod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def measure(model, make_stepper, *, batch, prompt_len, new_tokens, device, **kw):
        clock[0] += cost(batch, prompt_len)
        return fake_metrics(batch, prompt_len, new_tokens)

    return measure


def test_each_model_gets_a_fair_share_of_the_sweep_budget(tmp_path, monkeypatch):
    """budget_s 60 for two models: the first (10 s a point) stops after its 30 s share, the second gets the rest."""
    measure = _clocked(monkeypatch, lambda b, L: 10.0)
    sweep = Sweep(cfg(budget_s=60.0, batches=[1, 2, 4, 8, 16, 32]), RecordWriter(tmp_path / "b.jsonl"), shapes=TINY,
                  load_model=fake_load, measure_point=measure)
    sweep.run()
    per_model = {m: sum(r["metric"] == "point" and r["model"] == m for r in sweep.rows) for m in TINY}
    assert per_model == {"tiny-neox": 4, "tiny-mamba": 3}  # started at 0, 10, 20, 30 s; then 40, 50, 60 s
    first = [r for r in sweep.rows if r["model"] == "tiny-neox" and r["metric"] == "point"]
    assert [r["point_s"] for r in first] == [10.0] * 4
    assert [r["model_elapsed_s"] for r in first] == [10.0, 20.0, 30.0, 40.0]


def test_a_batch_point_predicted_past_the_budget_is_not_started(tmp_path, monkeypatch):
    measure = _clocked(monkeypatch, lambda b, L: 4.0 * b)  # batch 1: 4 s, 2: 8 s, 4: 16 s ...
    sweep = Sweep(cfg(models=["tiny-neox"], prompt_lens=[16], budget_per_model_s=40.0),
                  RecordWriter(tmp_path / "b.jsonl"), shapes=TINY, load_model=fake_load, measure_point=measure)
    sweep.run()
    ran = [(r["phase"], r["batch"]) for r in sweep.rows if r["metric"] == "point"]
    assert ran == [("context", 1), ("batch", 1), ("batch", 2), ("batch", 4)]  # 4 + 4 + 8 + 16 = 32 s
    assert any("B=8" in s and "predicted 32 s, 8 s of the time budget left" in s for s in sweep.not_run)
    (mb,) = [r for r in sweep.rows if r["metric"] == "max_batch"]
    assert mb["value"] == 4 and mb["stopped_by"] == "time_budget"


def test_a_hung_child_is_killed_past_its_limit_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import backend.bench.isolate as iso

    monkeypatch.setenv("SSM_ARENA_BENCH_HANG_AT", "tiny-mamba:context:1:8")
    shapes = {"tiny-mamba": TINY["tiny-mamba"], "tiny-neox": TINY["tiny-neox"]}
    c = cfg(models=list(shapes), prompt_lens=[8], long_from=1000, batches=[1], batch_prompt_len=8,
            new_tokens=[3], batch_new_tokens=3, isolate=True, budget_per_model_s=30.0)
    sweep = Sweep(c, RecordWriter(tmp_path / "iso.jsonl"), shapes=shapes, run_model=iso.run_model_in_child)
    monkeypatch.setattr(iso, "kill_after_s", lambda limit: 20.0)  # 30 s limit, but the test need not wait 90 s
    sweep.run()
    got = [(r["model"], r["phase"], r["batch"], r["status"]) for r in sweep.rows if r["metric"] == "point"]
    assert got == [("tiny-mamba", "context", 1, "error"),
                   ("tiny-neox", "context", 1, "ok"), ("tiny-neox", "batch", 1, "ok")]
    crash = [r for r in sweep.rows if r["status"] == "error"][0]
    assert "killed after 20 s" in crash["error"]
