"""Run one experiment with several worker processes (`python -m backend experiment ... --workers N`).

Each worker process loads a share of the models (model i goes to worker i mod N) and runs the whole plan on
them, writing to the same store under the same run id (the JSONL RecordWriter and the DuckDB store both take
writes from several processes). The parent builds the plan once (so every model sees the same prompts),
starts and finishes the run, shows progress, and passes a cancel on to the workers.

On one GPU this overlaps the Python overhead of batch-1 decoding across models. Timings measured this way
share the device with the other workers: each timing row says how many workers ran (extra.workers), and
speed comparisons should use runs with one worker.

This reaches one machine and marks a run failed when a worker dies. For several GPUs or machines, and a
worker that dies retried, use `--ray` (backend/experiments/ray_runner.py): the same plan, evaluate and
records, as shards on a Ray cluster.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
from collections.abc import Callable
from typing import Any

from backend.experiments.config import ExperimentConfig
from backend.experiments.plans import build_plan
from backend.experiments.registry import Plan
from backend.experiments.runner import (
    Progress,
    RunOutcome,
    _Buffer,
    _finish,
    _model_summary,
    _stored_predictions,
    aggregate,
    evaluate,
    model_info,
)
from backend.scale.cluster import environ
from store import RecordWriter, open_store


def _store_spec(store) -> tuple[str, str]:
    return ("jsonl", str(store.path)) if isinstance(store, RecordWriter) else ("duckdb", str(store.path))


def _open(spec: tuple[str, str]):
    if spec[0] == "jsonl":
        from store import RecordWriter

        return RecordWriter(spec[1])

    return open_store(spec[1])


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def worker_env(device: str | None, workers: int) -> dict[str, str]:
    """Environment for each of `workers` processes that run on the CPU: the cores split between them, for
    OpenMP (torch), MKL and numba (variables the user set are kept); {} for one worker or a GPU. Why: each
    worker's thread pools default to every core, and idle OpenMP threads spin, so two workers on two cores
    starved each other. Measured on the 2-core CPU, chain of thought at 8 steps, 2 workers: median time per
    output token 13.5-132 ms with the defaults against 5.2-5.6 ms so (the full CoT run: 1,264 against 218 ms
    per generation). Set before the children start: the pools are sized when torch and numba load."""
    from backend.device import resolve_device

    if workers <= 1 or resolve_device(device or "auto").type != "cpu":
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = str(max(1, cores // workers))
    return {v: share for v in THREAD_VARS if not os.environ.get(v)}


def _worker(config_dict: dict, plan: Plan, models: list[str], run_id: str, spec: tuple[str, str],
            device: str | None, workers: int, q, stop_ev) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        from backend.models.manager import ModelManager

        config = ExperimentConfig.from_dict(config_dict)
        store = _open(spec)
        manager = ModelManager()
        gens = {m: manager.get(m, device=device) if device else manager.get(m) for m in models}
        for m, g in gens.items():
            q.put(("info", m, model_info(g)))
        done_ids = {m: set(store.done_instances(run_id, m)) for m in models}
        buffer = _Buffer(store, run_id)
        try:
            for inst in plan.instances:
                task = plan.tasks[inst.task]
                for m, gen in gens.items():
                    if inst.id in done_ids[m]:
                        continue
                    if stop_ev.is_set():
                        return
                    result = evaluate(task, inst, gen, config, stop_ev.is_set)
                    if result is None:
                        return
                    pred, meas = result
                    meas["extra"]["workers"] = workers
                    buffer.add(pred, meas)
                    q.put(("done", m, inst.id))
        finally:
            buffer.flush()
    except Exception as e:  # reported to the parent, which marks the run failed
        q.put(("error", ",".join(models), f"{type(e).__name__}: {e}"))


def run_parallel(config: ExperimentConfig, store, *, workers: int, device: str | None = None,
                 progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                 resume_run_id: str | None = None, meta: dict | None = None, name: str | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> RunOutcome:
    """Like run_experiment, with `workers` processes. `count_tokens` (default: the first model's tokenizer,
    loaded on the CPU in this process) sizes length-targeted prompts."""
    config.validate()
    workers = max(1, min(workers, len(config.models)))
    if count_tokens is None:
        from backend.models.manager import ModelManager

        count_tokens = ModelManager().get(config.models[0], device="cpu").count_tokens
    plan = build_plan(config, count_tokens=count_tokens)
    stop = should_stop or (lambda: False)
    if resume_run_id:
        run_id = resume_run_id
    else:
        if meta is None:
            from backend.runinfo import run_meta

            meta = run_meta(device)
        meta = {**meta, "models": list(config.models), "seed": config.seed, "n_instances": len(plan.instances),
                "workers": workers}
        run_id = store.start_run(config.kind, config.to_dict(), meta, name=name)
    total = len(plan.instances) * len(config.models)
    ids = {i.id for i in plan.instances}
    done = sum(len(set(store.done_instances(run_id, m)) & ids) for m in config.models) if resume_run_id else 0
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    q, stop_ev = ctx.Queue(), ctx.Event()
    spec = _store_spec(store)
    procs = [ctx.Process(target=_worker, args=(config.to_dict(), plan, config.models[w::workers], run_id, spec,
                                               device, workers, q, stop_ev), daemon=True)
             for w in range(workers)]
    infos: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    if progress:
        progress(done, total, "starting workers")
    try:
        with environ(worker_env(device, workers)):  # spawned children copy the environment when they start
            for p in procs:
                p.start()
        while any(p.is_alive() for p in procs) or not q.empty():
            if stop() and not stop_ev.is_set():
                stop_ev.set()
            try:
                kind, model, payload = q.get(timeout=0.2)
            except queue_mod.Empty:
                continue
            if kind == "info":
                infos[model] = payload
            elif kind == "error":
                errors.append(f"{model}: {payload}")
                stop_ev.set()
            else:
                done += 1
                if progress:
                    progress(done, total, f"{model}: {payload}")
        for p in procs:
            p.join()
    except BaseException as e:
        stop_ev.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        try:
            _finish(store, run_id, "cancelled" if not isinstance(e, Exception) else "failed",
                    {"done": done, "total": total, "error": str(e) or type(e).__name__, "model_info": infos})
        except Exception:
            pass
        raise
    errors += [f"worker {w} exited with code {p.exitcode}" for w, p in enumerate(procs) if p.exitcode]
    status = "failed" if errors else "cancelled" if done < total else "completed"
    summary: dict[str, Any] = {"done": done, "total": total, "model_info": infos, "workers": workers}
    aggs: list[dict] = []
    extra: list[dict] = []
    if errors:
        summary["error"] = "; ".join(errors)
    if status == "completed":
        rows = _stored_predictions(store, run_id)
        families = {m: i.get("family") for m, i in infos.items()}
        aggs = aggregate(rows, families, plan.tasks)
        extra = plan.measure(plan, rows, families) if plan.measure is not None else []
        store.add_measurements(run_id, aggs + extra)
        summary["models"] = _model_summary(rows)
    _finish(store, run_id, status, summary)
    return RunOutcome(run_id, status, done, total, summary, list(plan.warnings), summary.get("error"), aggs, extra)
