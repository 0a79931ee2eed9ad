"""The fair benchmark on a hybrid (Hugging Face BambaForCausalLM: Mamba-2 layers plus an attention layer), CPU.

A tiny saved Bamba registered with registry.add_local_model is benchmarked by its name: its Mamba layers on our
kernels (path "cpu-chunked" on CPU), decoded by the shared eager loop, prompts past its attention layers'
max_position_embeddings skipped as a transformer's are, and each row carrying both parts of its cache (the
Mamba layers' state and the attention layers' KV bytes per token)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

from backend.bench import steppers as S
from backend.bench.shapes import Shape, expand_models, get_shape, resolve_shapes
from backend.bench.sweep import Sweep, SweepConfig
from backend.models import registry
from store import RecordWriter
from store.records import iter_records
from tests.backend.helpers import build_tiny_hybrid

HIDDEN, LAYERS, ATTN, HEADS, D_HEAD, STATE, KV_HEADS, CONV, MAX_POS = 32, 3, [1], 4, 16, 8, 2, 4, 48


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    """A tiny saved BambaForCausalLM (random weights, 48 trained positions) with the placeholders' tokenizer."""
    return build_tiny_hybrid(tmp_path_factory.mktemp("tiny-hybrid"), layers=LAYERS, attn=tuple(ATTN),
                             max_positions=MAX_POS)


@pytest.fixture
def hybrid(hybrid_dir, monkeypatch):
    """The folder registered as "tiny-hybrid" (each test has its own SSM_ARENA_DATA), our default kernels."""
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    return registry.add_local_model(hybrid_dir, name="tiny-hybrid")


def expected_bytes(elem: int = 4) -> tuple[int, int]:
    """(conv + SSM state of the Mamba layers, K + V per token of the attention layer), one sequence, fp32."""
    n_mamba, n_attn = LAYERS - len(ATTN), len(ATTN)
    conv_dim = 2 * HIDDEN + 2 * STATE
    state = n_mamba * (conv_dim * CONV + HEADS * D_HEAD * STATE) * elem
    return state, n_attn * 2 * KV_HEADS * (HIDDEN // 4) * elem


def cfg(**kw):
    base = dict(models=["tiny-hybrid"], prompt_lens=[8, 16, 64], new_tokens=[4], long_from=64, batches=[1, 2],
                batch_prompt_len=8, batch_new_tokens=4, repeats=1, warmup=1, hf_baseline=True, eager_baseline=True,
                baseline_prompt_len=8, baseline_new_tokens=3, device="cpu", dtype="float32")
    base.update(kw)
    return SweepConfig(**base)


def test_a_registered_hybrid_is_a_benchmark_model_by_name(hybrid, hybrid_dir):
    shape = get_shape("tiny-hybrid")
    assert (shape.family, shape.folder, shape.weights) == ("hybrid", str(hybrid_dir.resolve()), "local")
    assert expand_models(["tiny-hybrid", "toy"])[0] == "tiny-hybrid"
    assert Shape(**asdict(shape)) == shape  # how an isolated child or a Ray shard gets it
    assert resolve_shapes(["tiny-hybrid"])["tiny-hybrid"] == shape
    with pytest.raises(ValueError, match=r"Unknown benchmark model 'no-such-model'\. .*models --add FOLDER"):
        get_shape("no-such-model")
    with pytest.raises(ValueError, match="Unknown benchmark model 'no-such-model'"):
        Sweep(cfg(models=["tiny-hybrid", "no-such-model"]), RecordWriter("/dev/null"))
    with pytest.raises(ValueError, match="random-weight shapes .* and local folders only"):
        get_shape("EleutherAI/pythia-160m")  # a Hub entry of the registry: not loaded by the benchmark


def test_hybrid_sweep_rows(hybrid, tmp_path):
    writer = RecordWriter(tmp_path / "b.jsonl")
    sweep = Sweep(cfg(), writer)
    run_id = sweep.run()
    rows = sweep.rows
    assert rows and all(r["family"] == "hybrid" and r["model"] == "tiny-hybrid" for r in rows)
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    state, kv = expected_bytes()
    assert state > 0 and kv > 0
    for r in rows:  # every row: the Mamba layers' path, both parts of the cache, the attention's own path
        assert r["kernel_path"] == "cpu-chunked" and r["weights"] == "local" and r["partner"] is None
        assert (r["state_bytes"], r["kv_bytes_per_token"]) == (state, kv)
        assert r["attn_path"] in ("sdpa", "eager")
    ctx = [r for r in rows if r["phase"] == "context"]
    assert [r["prompt_tokens"] for r in ctx] == [8, 16]  # two prompt lengths
    for r in ctx + [r for r in rows if r["phase"] == "batch"]:
        assert r["path"] == "cpu-chunked" and r["cache_kind"] == "ssm_state+kv"
        assert math.isfinite(r["tpot_ms"]) and r["tpot_ms"] > 0 and r["decode_tok_s"] > 0
        # the cache after the last step: the state, plus K and V of every token fed (the last one is not)
        tokens = r["prompt_tokens"] + r["new_tokens"] - 1
        assert r["cache_bytes"] == r["batch"] * (state + kv * tokens)
    assert ctx[1]["cache_bytes"] - ctx[0]["cache_bytes"] == kv * 8  # grows per token, unlike a pure SSM's
    # the attention layers' trained positions bound the prompt, as a transformer's do: 64 + 4 > 48 is skipped
    assert not any(r["prompt_tokens"] == 64 for r in rows)
    assert any("L=64" in s and f"beyond max_position_embeddings={MAX_POS}" in s for s in sweep.not_run)
    phases = {r["phase"] for r in rows}
    assert "eager" not in phases  # its own path is the eager loop already: no separate reference row
    assert {"context", "batch", "hf-generate", "max_batch"} <= phases
    (hf,) = [r for r in rows if r["phase"] == "hf-generate"]
    assert hf["path"] == "hf-generate" and math.isfinite(hf["tpot_ms"])
    (mb,) = [r for r in rows if r["metric"] == "max_batch"]
    assert mb["value"] == 2 and mb["stopped_by"] == "end_of_list"
    stored = [rec["data"] for _, rec, _ in iter_records(tmp_path / "b.jsonl") if rec and rec.get("type") == "measurement"]
    assert len(stored) == len(rows) and all(d["state_bytes"] == state for d in stored)
    assert run_id


def test_best_stepper_of_a_hybrid_is_the_eager_loop(hybrid):
    from backend.generation.steppers import EagerStepper

    model, path = S.load_model(get_shape("tiny-hybrid"), torch.device("cpu"), torch.float32)
    assert path == "cpu-chunked" and model.arena_path == "cpu-chunked"
    stepper = S.make_stepper("best", model, "hybrid", torch.device("cpu"), 4)
    assert type(stepper) is EagerStepper and stepper.cache_kind == "ssm_state+kv"
    assert S.has_attention("hybrid") and S.has_ssm_layers("hybrid")
    assert not S.has_attention("mamba2") and not S.has_ssm_layers("transformer")


def test_a_failing_hybrid_fast_path_falls_back_to_hf_torch(hybrid, tmp_path, monkeypatch):
    """Our kernels fail on the hybrid's Mamba layers: the error is recorded, the rest runs on HF's torch path."""
    from backend.generation import cpu_prefill, ssm_fast

    orig = ssm_fast._mamba2_forward

    def broken(self, hidden_states, *a, **kw):
        if hidden_states.shape[1] > 1:  # the one-token state / KV measurement passes; the first prefill fails
            raise RuntimeError("kernel failed to compile")
        return orig(self, hidden_states, *a, **kw)

    monkeypatch.setattr(ssm_fast, "_mamba2_forward", broken)
    bind = cpu_prefill._mamba2  # the bound CPU prefill runs the same kernels: they fail there too

    def broken_bind(mixer, binder):
        layer = bind(mixer, binder)

        def fail(proj):
            raise RuntimeError("kernel failed to compile")
        return fail if layer is not None else None

    monkeypatch.setattr(cpu_prefill, "_mamba2", broken_bind)
    sweep = Sweep(cfg(prompt_lens=[8, 16], batches=[1], hf_baseline=False), RecordWriter(tmp_path / "b.jsonl"))
    sweep.run()
    first, retry = sweep.rows[0], sweep.rows[1]
    assert first["status"] == "error" and "kernel failed" in first["error"] and first["kernel_path"] == "cpu-chunked"
    assert retry["status"] == "ok" and retry["kernel_path"] == "hf-torch" and retry["path"] == "hf-torch"
    assert all(r["status"] == "ok" and r["family"] == "hybrid" for r in sweep.rows[1:])
    assert any("fast path failed" in s for s in sweep.not_run)


def test_an_isolated_child_benchmarks_the_registered_hybrid(hybrid, tmp_path, monkeypatch):
    """The child process gets the shape (its folder included), not the registry: same rows as in-process."""
    from backend.bench.isolate import run_model_in_child

    monkeypatch.delenv("SSM_ARENA_BENCH_CRASH_AT", raising=False)
    c = cfg(prompt_lens=[8, 64], batches=[1], hf_baseline=False, isolate=True)
    sweep = Sweep(c, RecordWriter(tmp_path / "iso.jsonl"), run_model=run_model_in_child)
    sweep.run()
    got = [(r["phase"], r["prompt_tokens"], r["status"], r["kernel_path"]) for r in sweep.rows if r["metric"] == "point"]
    assert got == [("context", 8, "ok", "cpu-chunked"), ("batch", 8, "ok", "cpu-chunked")]
    assert all(r["family"] == "hybrid" and r["state_bytes"] == expected_bytes()[0] for r in sweep.rows)
    assert any(f"beyond max_position_embeddings={MAX_POS}" in s for s in sweep.not_run)


def test_partner_of_a_local_model_is_the_runs_closest_named_transformer():
    from backend.bench.shapes import partner_of

    run = {"ctx-s1-toy-hybrid": "hybrid", "ctx-s0-toy-transformer-deep": "transformer",
           "ctx-s0-toy-transformer": "transformer", "ctx-s1-toy-transformer-deep": "transformer",
           "ctx-s1-toy-transformer": "transformer", "ctx-s1-toy-mamba": "mamba"}
    assert partner_of("ctx-s1-toy-hybrid", run) == "ctx-s1-toy-transformer"  # same seed, not the -deep variant
    assert partner_of("ctx-s1-toy-mamba", run) == "ctx-s1-toy-transformer"
    assert partner_of("ctx-s1-toy-transformer-deep", run) is None  # transformers are the reference side
    assert partner_of("toy-mamba", run) == "toy-transformer"  # the fixed pairs first
    assert partner_of("ctx-s1-toy-hybrid", {"ctx-s1-toy-hybrid": "hybrid"}) is None  # no transformer in the run
    assert partner_of("ctx-s1-toy-hybrid") is None


def test_a_hybrid_benchmarked_with_a_transformer_is_paired_with_it(hybrid, tmp_path):
    """The Performance page's pair comparisons (analysis.pairs_in) list the hybrid against the run's transformer."""
    import pandas as pd

    from backend.bench.analysis import pairs_in
    from backend.models.placeholders import build_tiny

    registry.add_local_model(build_tiny("llama", tmp_path / "tiny-transformer", max_positions=MAX_POS),
                             name="tiny-transformer")
    sweep = Sweep(cfg(models=["tiny-hybrid", "tiny-transformer"], prompt_lens=[8], batches=[1], hf_baseline=False,
                      eager_baseline=False), RecordWriter(tmp_path / "b.jsonl"))
    sweep.run()
    rows = [r for r in sweep.rows if r["status"] == "ok" and r.get("metric") == "point"]
    assert {r["partner"] for r in rows if r["model"] == "tiny-hybrid"} == {"tiny-transformer"}
    assert {r["partner"] for r in rows if r["model"] == "tiny-transformer"} == {None}
    assert pairs_in(pd.DataFrame(sweep.rows)) == [("tiny-hybrid", "tiny-transformer")]
