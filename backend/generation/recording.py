"""Write a side-by-side generation (UI Arena or CLI `generate`) to the results store.

One run of kind "generate": config = the shared settings, the prompt and the models; meta = run_meta();
one measurement row per model (every GenMetrics field, plus finish_reason and source) and one prediction
row per model (prompt, output, settings). `store` is anything with the store write API (a DuckDB `Store`
or a JSONL `RecordWriter`).
"""

from __future__ import annotations

from dataclasses import asdict

from backend.generation.interface import GenerationResult, GenSettings
from backend.runinfo import run_meta


def record_generation(store, results: list[GenerationResult], settings: GenSettings, source: str = "ui",
                      name: str | None = None, device: str | None = None) -> str:
    if not results:
        raise ValueError("There is nothing to record: no model produced a result.")
    prompts = {r.prompt for r in results}
    config = {
        "source": source,
        "models": [r.model for r in results],
        "prompt": results[0].prompt if len(prompts) == 1 else None,
        "settings": asdict(settings),
    }
    meta = run_meta(device)
    meta["device_names"] = sorted({r.metrics.device for r in results})
    run_id = store.start_run("generate", config, meta, name=name)
    status = "failed"
    try:
        store.add_measurements(run_id, [
            {**r.metrics.to_dict(), "model": r.model, "family": r.family, "warmup": 0, "repeats": 1,
             "finish_reason": r.finish_reason, "source": source}
            for r in results
        ])
        store.add_predictions(run_id, [
            {"model": r.model, "instance_id": "prompt-0", "prompt": r.prompt, "output": r.text,
             "params": asdict(r.settings), "finish_reason": r.finish_reason, "source": source}
            for r in results
        ])
        status = "cancelled" if all(r.finish_reason == "cancelled" for r in results) else "completed"
    finally:
        store.finish_run(run_id, status, summary={
            r.model: {"finish_reason": r.finish_reason, "new_tokens": r.metrics.new_tokens} for r in results})
    return run_id
