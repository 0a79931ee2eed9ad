"""Write a side-by-side generation (UI Arena or CLI `generate`) to the results store.

One run of kind "generate": config = the shared settings, the prompt and the models; meta = run_meta();
one measurement row per model (every GenMetrics field, plus finish_reason and source) and one prediction
row per model (prompt, output, settings). `store` is anything with the store write API (a DuckDB `Store`
or a JSONL `RecordWriter`).

Repeats: when a model ran several timed times (`runs`, the shown run first), its row holds the median of
each timing over the runs, `repeats` = their number and `warmup` = the untimed runs before them; `extra`
keeps the spread (min and max) and every run's timings. Failures: a model that did not produce a result
(e.g. it could not load) is named in the config and the summary with its sentence, and the run's status is
"failed", so History never shows such a run as completed.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict

from backend.generation.interface import GenerationResult, GenMetrics, GenSettings
from backend.runinfo import run_meta

TIMED = ("ttft_ms", "prefill_ms", "tpot_ms", "tpot_p90_ms", "decode_tok_s", "total_ms")


def repeat_stats(runs: list[GenMetrics]) -> dict[str, tuple[float, float, float]]:
    """metric -> (median, min, max) over the timed runs that have it."""
    out = {}
    for name in TIMED:
        vals = [getattr(m, name) for m in runs if getattr(m, name) is not None]
        if vals:
            out[name] = (float(statistics.median(vals)), float(min(vals)), float(max(vals)))
    return out


def _row(r: GenerationResult, runs: list[GenMetrics] | None, warmup: int, source: str) -> dict:
    row = {**r.metrics.to_dict(), "model": r.model, "family": r.family, "warmup": warmup, "repeats": 1,
           "finish_reason": r.finish_reason, "source": source}
    if runs and len(runs) > 1:
        stats = repeat_stats(runs)
        row.update({k: med for k, (med, _, _) in stats.items()})
        row["peak_mem_bytes"] = max((m.peak_mem_bytes for m in runs if m.peak_mem_bytes is not None), default=None)
        row["repeats"] = len(runs)
        row["spread"] = {k: [lo, hi] for k, (_, lo, hi) in stats.items()}
        row["runs"] = [{k: getattr(m, k) for k in TIMED} for m in runs]
    return row


def record_generation(store, results: list[GenerationResult], settings: GenSettings, source: str = "ui",
                      name: str | None = None, device: str | None = None, failures: dict[str, str] | None = None,
                      runs: list[list[GenMetrics]] | None = None, warmup: int = 0) -> str:
    """`runs[i]`: every timed run of results[i] (optional); `failures`: model -> sentence of the models
    that produced no result."""
    failures = dict(failures or {})
    if not results and not failures:
        raise ValueError("There is nothing to record: no model produced a result.")
    prompts = {r.prompt for r in results}
    config = {
        "source": source,
        "models": [r.model for r in results] + [m for m in failures if m not in {r.model for r in results}],
        "prompt": results[0].prompt if len(prompts) == 1 else None,
        "settings": asdict(settings),
        "warmup": warmup,
    }
    if failures:
        config["failed_models"] = sorted(failures)
    meta = run_meta(device)
    meta["device_names"] = sorted({r.metrics.device for r in results})
    run_id = store.start_run("generate", config, meta, name=name)
    status = "failed"
    runs = runs or [None] * len(results)
    try:
        if results:
            store.add_measurements(run_id, [_row(r, rr, warmup, source) for r, rr in zip(results, runs, strict=True)])
            store.add_predictions(run_id, [
                {"model": r.model, "instance_id": "prompt-0", "prompt": r.prompt, "output": r.text,
                 "params": asdict(r.settings), "finish_reason": r.finish_reason, "source": source}
                for r in results
            ])
        if failures:
            status = "failed"
        elif all(r.finish_reason == "cancelled" for r in results):
            status = "cancelled"
        else:
            status = "completed"
    finally:
        summary = {r.model: {"finish_reason": r.finish_reason, "new_tokens": r.metrics.new_tokens} for r in results}
        if failures:
            summary["failed_models"] = failures
        store.finish_run(run_id, status, summary=summary)
    return run_id
