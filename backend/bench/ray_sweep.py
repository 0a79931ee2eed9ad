"""The benchmark as Ray shards (`python -m backend bench ... --ray [ADDRESS]`): one shard per model.

Each shard asks for one GPU where a GPU is used (so no two shards time on the same card), else one CPU, and
measures its model with the same `Sweep` code as one process (`Sweep._run_model`, the code an isolated child
runs), writing its rows with store.RecordWriter into a node-local JSONL file; the shard hands the file's
records back when the model is done and the driver writes them into its writer (the DuckDB store stays the
only writer of its file). A dead worker (a CUDA crash poisons its process, out of memory, a killed node) is
run again by Ray up to `max_retries` times from the model's start; only the attempt that finished delivers
rows, so none is written twice. A model whose shard still fails gets one "error" row with the reason, as an
isolated child's crash does, and the sweep goes on.

Every row says where it was measured: `device` (the shard's GPU or CPU name), node / node_ip / node_id,
gpu / gpu_ids, and shards_sharing (shards on the same device when the row was written; GPU shards own
their card, CPU shards of one node share its cores, so CPU speed comparisons want 1). Time budgets apply to
each model's shard from when it starts. Cancel (or Ctrl-C) stops starting points; finished rows are kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict

from backend.bench import sweep as S
from backend.bench.shapes import Shape, resolve_shapes
from backend.scale import cluster as C
from store import RecordWriter


class _Stopped(Exception):
    """The driver asked the shards to stop (raised before a point starts)."""


class _StampedWriter:
    """A RecordWriter whose rows carry the shard's whereabouts and how many shards share its device."""

    def __init__(self, writer: RecordWriter, where: dict, poller, shard: str) -> None:
        self.writer, self.where, self.poller, self.shard = writer, where, poller, shard

    def add_measurements(self, run_id: str, rows: list[dict]) -> int:
        for r in rows:
            C.stamp(r, self.where, self.poller.sharing, self.shard)
        return self.writer.add_measurements(run_id, rows)


def bench_shard(spec: dict, control) -> dict:
    """One model of the sweep, inside a Ray worker."""
    import ray  # in a Ray worker, ray is there

    shard, run_id = spec["shard"], spec["run_id"]
    with C.shard_env(spec["env"]):
        where = C.whereabouts(ray)
        C.wait_for(control.start.remote(shard, where))
        poller = C.Poller(ray, control, shard)
        shape_d = dict(spec["shape"], kwargs=tuple(tuple(kv) for kv in spec["shape"].get("kwargs") or ()))
        shape = Shape(**shape_d)
        path = C.shard_file(run_id, shard)
        tail = C.Tail(path)
        writer = _StampedWriter(RecordWriter(path, fsync=False), where, poller, shard)
        sweep = S.Sweep(S.SweepConfig(**spec["cfg"]), writer, shapes={shape.name: shape}, progress=lambda m: None)
        sweep.meta, sweep.run_id, sweep._t0 = S._meta(sweep.device), run_id, time.perf_counter()
        sweep._model_limit = sweep.cfg.budget_per_model_s

        crash_at = os.environ.get("SSM_ARENA_BENCH_CRASH_AT", "")  # the isolated child's fault injection

        def on_point(plan) -> None:
            if poller.stop.is_set():
                raise _Stopped
            if crash_at == f"{shape.name}:{plan.phase}:{plan.batch}:{plan.prompt_len}":
                os._exit(134)  # what a hard crash looks like (tests)
            control.tick.remote(shard)

        sweep.on_point = on_point
        stopped = False
        try:
            sweep._run_model(shape.name)
        except _Stopped:
            stopped = True
        finally:
            poller.close()
        records = tail.read()
        path.unlink(missing_ok=True)
        return {"shard": shard, "records": records, "not_run": sweep.not_run, "where": where, "stopped": stopped}


def run_sweep_on_ray(cfg: S.SweepConfig, writer, *, address: str | None = None, name: str | None = None,
                     shapes: dict[str, Shape] | None = None, progress: Callable[[str], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     max_retries: int = C.DEFAULT_RETRIES) -> tuple[str, list[dict]]:
    """Like run_sweep, one Ray shard per model (see the module docstring). Returns (run id, rows)."""
    cfg.validate()
    shapes = resolve_shapes(cfg.models, shapes)  # shapes, or local folders of the model registry
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    with C.session(address) as ray:
        opts, device = C.shard_options(ray, None if cfg.device == "auto" else cfg.device, max_retries)
        from backend.runinfo import run_meta

        info = {"address": address or "local", "nodes": sum(n["Alive"] for n in ray.nodes()),
                "shards": len(cfg.models), "device": device, "max_retries": max_retries}
        config = {**asdict(cfg), "isolate": False, "device_resolved": device, "ray": info}
        run_id = writer.start_run(S.RUN_KIND, config, {**run_meta(), "ray": info}, name=name)
        control = C.new_control(ray)
        task = C.shard_task(ray, bench_shard, opts)
        env = C.forwarded_env()
        shard_cfg = {**asdict(cfg), "device": device, "isolate": False}
        if cfg.budget_s is not None:
            shard_cfg["budget_per_model_s"] = min(cfg.budget_s, cfg.budget_per_model_s or cfg.budget_s)
        refs = {task.remote({"shard": m, "run_id": run_id, "env": env, "shape": asdict(shapes[m]),
                             "cfg": {**shard_cfg, "models": [m]}}, control): m for m in cfg.models}
        rows: list[dict] = []
        not_run: list[str] = []
        status = "failed"

        def on_counts(counts: dict, where: dict) -> None:
            say(f"{sum(counts.values())} points started; " + ", ".join(f"{m}: {n}" for m, n in counts.items()))

        try:
            results, errors, stopped = C.drive(ray, refs, control, on_records=lambda recs: None,
                                               on_counts=on_counts, should_stop=should_stop,
                                               max_retries=max_retries,
                                               then="the other models' rows are kept; run this model again")
            for m in cfg.models:  # in the order asked for, whichever shard finished first
                if m in results:
                    got = [{**r["data"], "measurement_id": r["measurement_id"], "created_at": r["created_at"]}
                           for r in results[m]["records"] if r.get("type") == "measurement"]
                    writer.add_measurements(run_id, got)
                    rows += got
                    not_run += results[m]["not_run"]
                    stopped = stopped or results[m]["stopped"]
                elif errors.get(m) not in (None, "cancelled"):
                    row = _error_row(shapes[m], device, f"the shard for {m} failed: {errors[m]}")
                    writer.add_measurements(run_id, [row])
                    rows.append(row)
                    not_run.append(f"{m}: all points (its shard failed: {errors[m]})")
                else:
                    not_run.append(f"{m}: all points (cancelled)")
            status = "cancelled" if stopped else "completed"
            say(f"{S.point_counts(rows)['points']} points from {len(results)} shards")
        except KeyboardInterrupt:
            status = "cancelled"
            raise
        finally:
            writer.finish_run(run_id, status, {**S.point_counts(rows), "not_run": not_run,
                                               "elapsed_s": round(time.perf_counter() - t0, 1), "ray": info})
    return run_id, rows


def _error_row(shape: Shape, device: str, reason: str) -> dict:
    """The row a model gets when its shard failed after its retries (as an isolated child's crash)."""
    return {"model": shape.name, "family": shape.family, "metric": "point", "phase": "load", "batch": 1,
            "prompt_tokens": 0, "new_tokens": 0, "device_kind": device, "weights": shape.weights, "status": "error",
            "error": reason[:400], "path": None}
