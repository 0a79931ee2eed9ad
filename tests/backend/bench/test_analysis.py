"""The page's analysis: crossovers, the paper-setting throughput ratio and the sentences stating them."""

import pandas as pd
import pytest

from backend.bench import analysis as A


def _row(model, partner, phase, batch, L, N=128, **m):
    base = {"metric": "point", "status": "ok", "model": model, "partner": partner, "phase": phase, "batch": batch,
            "prompt_tokens": L, "new_tokens": N, "path": "p", "run_id": "r1"}
    return {**base, **m}


def frame():
    rows = []
    for L, tf_tpot in ((512, 0.5), (2048, 0.7), (8192, 1.4), (32768, 4.0)):
        rows.append(_row("ssm", "tf", "context", 1, L, tpot_ms=1.0, prefill_ms=L / 100))
        rows.append(_row("tf", None, "context", 1, L, tpot_ms=tf_tpot, prefill_ms=L / 200))
    for b, ssm_tps, tf_tps in ((1, 100.0, 120.0), (64, 5000.0, 3000.0), (256, 20000.0, None)):
        rows.append(_row("ssm", "tf", "batch", b, 2048, e2e_tok_s=ssm_tps, decode_tok_s_batch=ssm_tps * 1.1))
        if tf_tps:
            rows.append(_row("tf", None, "batch", b, 2048, e2e_tok_s=tf_tps, decode_tok_s_batch=tf_tps * 1.1))
        else:
            rows.append(_row("tf", None, "batch", b, 2048, status="oom"))
    rows.append(_row("tf", None, "hf-generate", 1, 512, e2e_tok_s=1e9, decode_tok_s=1e9))  # baseline, ignored
    rows.append({"metric": "max_batch", "model": "ssm", "value": 256.0, "capped": True, "status": "ok"})
    rows.append({"metric": "max_batch", "model": "tf", "value": 64.0, "capped": False, "status": "ok"})
    return pd.DataFrame(rows)


def test_crossover_is_interpolated_in_log_space():
    df = frame()
    c = A.crossover(A.curve(df, "ssm", "tpot_ms"), A.curve(df, "tf", "tpot_ms"), "tpot_ms")
    assert c["kind"] == "crossing" and 2048 < c["x"] < 8192 and c["max_x"] == 32768
    # log-log interpolation: log ratio goes from log(1/0.7) to log(1/1.4)
    import math
    t = math.log(1 / 0.7) / (math.log(1 / 0.7) - math.log(1 / 1.4))
    assert c["x"] == pytest.approx(math.exp(math.log(2048) + t * (math.log(8192) - math.log(2048))))
    assert "becomes faster" in A.crossover_sentence(c, "ssm", "tf")


def test_crossover_never_always_unknown():
    df = frame()
    never = A.crossover(A.curve(df, "ssm", "prefill_ms"), A.curve(df, "tf", "prefill_ms"), "prefill_ms")
    assert never["kind"] == "never" and "not faster" in A.crossover_sentence(never, "ssm", "tf")
    always = A.crossover(A.curve(df, "tf", "prefill_ms"), A.curve(df, "ssm", "prefill_ms"), "prefill_ms")
    assert always["kind"] == "always"
    assert A.crossover(A.curve(df, "nope", "tpot_ms"), A.curve(df, "tf", "tpot_ms"), "tpot_ms")["kind"] == "unknown"


def test_paper_ratio_uses_largest_batch_each_fits_and_ignores_baselines():
    r = A.paper_ratio(frame(), "ssm", "tf")
    assert r["ssm"]["batch"] == 256 and r["tf"]["batch"] == 64  # tf ran out of memory at 256
    assert r["ratio"] == pytest.approx(20000 / 3000)
    assert r["ssm"]["capped"] is True and r["tf"]["capped"] is False
    text = A.claim_sentence(r, "H100")
    assert "6.67x" in text and "holds" in text and "did not run out of memory" in text


def test_claim_does_not_hold_and_cannot_be_judged():
    df = frame()
    df.loc[(df["model"] == "ssm") & (df["batch"] == 256), "status"] = "oom"
    r = A.paper_ratio(df, "ssm", "tf")
    assert r["ratio"] == pytest.approx(5000 / 3000)
    assert "does not hold" in A.claim_sentence(r)
    missing = A.paper_ratio(df[df["model"] != "tf"], "ssm", "tf")
    assert missing["ratio"] is None and "cannot be judged" in A.claim_sentence(missing)


def test_pairs_in():
    assert A.pairs_in(frame()) == [("ssm", "tf")]
    assert A.pairs_in(frame()[lambda d: d["model"] != "tf"]) == []


def test_a_cut_batch_sweep_and_the_decode_ratio_are_stated():
    df = frame()
    df = df[~((df["metric"] == "max_batch") & (df["model"] == "ssm"))]
    r = A.paper_ratio(df, "ssm", "tf")
    assert r["ssm"]["stopped_by"] == "unfinished"
    text = A.claim_sentence(r)
    assert "did not finish" in text and "Decode alone (prefill excluded): 6.67x" in text


def test_a_sweep_stopped_by_the_time_budget_is_not_called_a_memory_limit():
    df = frame()
    df["stopped_by"] = None
    df.loc[df["metric"] == "max_batch", "stopped_by"] = ["time_budget", "oom"]
    r = A.paper_ratio(df, "ssm", "tf")
    assert r["ssm"]["stopped_by"] == "time_budget" and r["tf"]["stopped_by"] == "oom"
    text = A.claim_sentence(r)
    assert "ssm 20,000 tok/s at batch 256 (the largest batch measured: the sweep stopped by the time budget" in text
    assert "tf 3,000 tok/s at batch 64 (the next batch ran out of memory)" in text
    assert "at the largest batches measured: ssm did not reach a memory limit" in text


def test_crossover_sentence_gives_the_values_and_a_shorter_side():
    df = frame()
    df = df[~((df["model"] == "tf") & (df["prompt_tokens"] == 32768))]  # tf measured only up to 8192
    c = A.crossover(A.curve(df, "ssm", "tpot_ms"), A.curve(df, "tf", "tpot_ms"), "tpot_ms")
    assert c["max_x"] == 8192 and c["ssm_max_x"] == 32768 and c["tf_max_x"] == 8192
    assert c["ssm_at_max"] == 1.0 and c["tf_at_max"] == 1.4
    text = A.crossover_sentence(c, "ssm", "tf")
    assert "At 8,192 tokens: ssm 1 ms, tf 1.4 ms (tf / ssm = 1.40x)." in text
    assert "tf was measured only up to 8,192 tokens (ssm up to 32,768)" in text


def test_cache_split_sentences_name_state_kv_and_both():
    rows = [_row("hybrid", "tf", "context", 1, 512, state_bytes=2 * 2**20, kv_bytes_per_token=4096),
            _row("ssm", "tf", "context", 1, 512, state_bytes=600 * 1024, kv_bytes_per_token=0),
            _row("tf", None, "context", 1, 512, state_bytes=0, kv_bytes_per_token=16384),
            _row("old", None, "context", 1, 512)]  # rows recorded before the split: no sentence
    s = A.cache_split_sentences(pd.DataFrame(rows), at_tokens=2048)
    assert len(s) == 3
    hybrid, ssm, tf = s
    # 2 MiB + 4 KiB x 2048 = 10 MiB in all, the state a fifth of it
    assert "2.0 MiB of conv + SSM state" in hybrid and "4.0 KiB of K and V per token" in hybrid
    assert "10.0 MiB in all at 2,048 tokens" in hybrid and "20%" in hybrid
    assert ssm.startswith("**ssm**: 600.0 KiB") and "no KV cache" in ssm
    assert "32.0 MiB at 2,048 tokens" in tf and "no recurrent state" in tf
    assert A.cache_split_sentences(pd.DataFrame([_row("old", None, "context", 1, 512)])) == []
