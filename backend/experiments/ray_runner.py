"""Run one experiment as shards on a Ray cluster (`python -m backend experiment ... --ray [ADDRESS]`).

The driver (this process) builds the plan once, so every model sees the same instances as in one process,
starts the run, and sends one shard per model (or, with shard_by="point", per model x sweep point) to the
cluster; each shard asks for one GPU where a GPU is used, else one CPU, and is spread over the nodes. A
shard loads its model on its node, runs its instances in plan order through the same `evaluate` as the
one-process runner, writes its records with store.RecordWriter into a node-local JSONL file and hands the new
lines to the run's control actor every second or so; the driver merges them into the store (DuckDB stays
the only writer of its file, or the --jsonl file). Records have stable ids (run, model, instance), so a
shard run again after its worker died skips what it delivered and no row is written twice.

Timing rows carry where they were measured: extra.node / node_ip / node_id, extra.gpu (and gpu_ids) and
extra.shards_sharing (shards on the same device - the node's CPUs or the GPU - when the row was written).
Speed comparisons should use rows with shards_sharing == 1.

    outcome = run_on_ray(config, store, address=None, device=None, progress=cb, should_stop=flag)

Statuses as run_experiment: completed; cancelled (a stop; resumable with resume_run_id); failed (a shard
failed after its retries: the reason is in summary.error and summary.shards; finished instances are kept
and a resume redoes the rest).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from backend.experiments.config import ExperimentConfig
from backend.experiments.jobs import ExperimentJob
from backend.experiments.plans import build_plan
from backend.experiments.registry import Plan
from backend.experiments.runner import (
    Progress,
    RunOutcome,
    _finish,
    _model_summary,
    _stored_predictions,
    aggregate,
    evaluate,
    model_info,
)
from backend.scale import cluster as C
from store import RecordWriter

FLUSH_S, FLUSH_ROWS = 1.0, 16


def _point(params: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items() if k not in ("query", "line", "prompt_tokens")))


def plan_shards(plan: Plan, models: list[str], shard_by: str = "model") -> dict[str, tuple[str, list[str]]]:
    """shard id -> (model, instance ids in plan order): one per model, or one per model x sweep point."""
    if shard_by not in ("model", "point"):
        raise ValueError(f"Shard by 'model' or 'point', not {shard_by!r}.")
    blocks: dict[tuple, list[str]] = {}
    for inst in plan.instances:
        key = (inst.task, _point(inst.params)) if shard_by == "point" else ()
        blocks.setdefault(key, []).append(inst.id)
    shards = {}
    for m in models:
        for i, ids in enumerate(blocks.values()):
            shards[m if shard_by == "model" else f"{m}#{i}"] = (m, ids)
    return shards


def experiment_shard(spec: dict, plan: Plan, control) -> dict:
    """One shard, inside a Ray worker: one model on a block of instances (see the module docstring)."""
    import ray  # in a Ray worker, ray is there

    from backend.models.manager import ModelManager
    from backend.runinfo import git_sha

    shard, model, run_id = spec["shard"], spec["model"], spec["run_id"]
    with C.shard_env(spec["env"]):
        where = C.whereabouts(ray)
        where["git_sha"] = git_sha()  # compared with the driver's when the run ends (a warning, not a failure)
        delivered = set(C.wait_for(control.start.remote(shard, where)))
        gen = ModelManager().get(model, device=spec["device"])
        config = ExperimentConfig.from_dict(spec["config"])
        by_id = {i.id: i for i in plan.instances}
        path = C.shard_file(run_id, shard)
        writer, tail = RecordWriter(path, fsync=False), C.Tail(path)
        poller = C.Poller(ray, control, shard)
        crash = _crash_after(model)
        preds: list[dict] = []
        meas: list[dict] = []
        last, done = time.monotonic(), 0

        def flush() -> None:
            nonlocal preds, meas, last
            if preds:  # measurements first: a prediction marks the instance done
                writer.add_measurements(run_id, meas)
                writer.add_predictions(run_id, preds)
                C.wait_for(control.put.remote(shard, tail.read()))
            preds, meas, last = [], [], time.monotonic()

        try:
            for iid in spec["ids"]:
                pid = C.record_id(run_id, "prediction", model, iid)
                if iid in spec["skip"] or pid in delivered:
                    continue
                if poller.stop.is_set():
                    break
                inst = by_id[iid]
                result = evaluate(plan.tasks[inst.task], inst, gen, config, poller.stop.is_set)
                if result is None:
                    break
                pred, m = result
                pred["prediction_id"], m["measurement_id"] = pid, C.record_id(run_id, "measurement", model, iid)
                C.stamp(m["extra"], where, poller.sharing, shard)
                preds.append(pred)
                meas.append(m)
                done += 1
                if len(preds) >= FLUSH_ROWS or time.monotonic() - last >= FLUSH_S:
                    flush()
                if crash is not None and done >= crash:
                    flush()
                    os._exit(1)  # fault injection (SSM_ARENA_SHARD_CRASH): what a crashed worker looks like
        finally:  # also when evaluate raised: hand in what finished (the driver may be gone: then nothing to do)
            with contextlib.suppress(Exception):
                flush()
            poller.close()
        path.unlink(missing_ok=True)
        return {"shard": shard, "model": model, "model_info": model_info(gen), "where": where, "done": done,
                "stopped": poller.stop.is_set()}


def _crash_after(model: str) -> int | None:
    """SSM_ARENA_SHARD_CRASH="model:N": a shard of `model` exits abruptly after N instances (tests)."""
    spec = os.environ.get("SSM_ARENA_SHARD_CRASH", "")
    name, _, n = spec.rpartition(":")
    return int(n) if name == model and n.isdigit() else None


def run_on_ray(config: ExperimentConfig, store, *, address: str | None = None, device: str | None = None,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               resume_run_id: str | None = None, meta: dict | None = None, name: str | None = None,
               count_tokens: Callable[[str], int] | None = None, shard_by: str = "model",
               max_retries: int = C.DEFAULT_RETRIES,
               on_shards: Callable[[dict[str, dict]], None] | None = None) -> RunOutcome:
    """Like run_experiment, on a Ray cluster (see the module docstring). `count_tokens` (default: the first
    model's tokenizer, loaded on this machine's CPU) sizes length-targeted prompts, as run_parallel does.
    `on_shards(state)` gets {shard: {"model", "done", "total", "node", "status"}} as shards report."""
    config.validate()
    if count_tokens is None:
        from backend.models.manager import ModelManager

        count_tokens = ModelManager().get(config.models[0], device="cpu").count_tokens
    plan = build_plan(config, count_tokens=count_tokens)
    shards = plan_shards(plan, config.models, shard_by)
    with C.session(address) as ray:
        opts, shard_device = C.shard_options(ray, device, max_retries)
        from backend.runinfo import git_sha, run_meta

        if resume_run_id:
            run_id = resume_run_id
        else:
            meta = {**(run_meta() if meta is None else meta), "models": list(config.models), "seed": config.seed,
                    "n_instances": len(plan.instances),
                    "ray": {"address": address or "local", "nodes": sum(n["Alive"] for n in ray.nodes()),
                            "shard_by": shard_by, "shards": len(shards), "device": shard_device,
                            "max_retries": max_retries}}
            run_id = store.start_run(config.kind, config.to_dict(), meta, name=name)
        total = len(plan.instances) * len(config.models)
        ids = {i.id for i in plan.instances}
        skip = {m: sorted(set(store.done_instances(run_id, m)) & ids) if resume_run_id else [] for m in config.models}
        before = {s: len(set(skip[m]) & set(iids)) for s, (m, iids) in shards.items()}
        state = {s: {"model": m, "done": before[s], "total": len(iids), "node": None, "status": "waiting"}
                 for s, (m, iids) in shards.items()}
        if progress:
            progress(sum(before.values()), total, f"{len(shards)} shards on the cluster")
        control = C.new_control(ray)
        plan_ref = ray.put(plan)
        task = C.shard_task(ray, experiment_shard, opts)
        env, sha = C.forwarded_env(), git_sha()
        refs = {task.remote({"shard": s, "model": m, "ids": iids, "skip": skip[m], "run_id": run_id,
                             "config": config.to_dict(), "device": shard_device, "env": env},
                            plan_ref, control): s for s, (m, iids) in shards.items()}

        def on_records(records: list[dict]) -> None:
            _merge(store, run_id, records)

        def on_counts(counts: dict, where: dict) -> None:
            for s, n in counts.items():
                state[s]["done"] = before[s] + n
            for s, w in where.items():  # shards that started (the last attempt's process)
                state[s].update(pid=w["pid"], status="running")
                state[s]["node"] = f"{w['node_ip']} {w['node_id'][:8]}" + (f" GPU {','.join(w['gpu_ids'])}"
                                                                          if w["gpu_ids"] else "")
            if progress:
                progress(sum(v["done"] for v in state.values()), total, _busy(state))
            if on_shards:
                on_shards({s: dict(v) for s, v in state.items()})

        try:
            results, errors, stopped = C.drive(ray, refs, control, on_records=on_records, on_counts=on_counts,
                                               should_stop=should_stop, max_retries=max_retries)
        except BaseException as e:
            done = sum(v["done"] for v in state.values())
            _finish(store, run_id, "cancelled" if not isinstance(e, Exception) else "failed",
                    {"done": done, "total": total, "error": str(e) or type(e).__name__})
            raise
    for s in state:
        state[s]["status"] = ("failed" if s in errors and errors[s] != "cancelled" else
                              "completed" if state[s]["done"] >= state[s]["total"] else "cancelled")
    if on_shards:
        on_shards({s: dict(v) for s, v in state.items()})
    return _conclude(config, plan, store, run_id, state, results, errors, stopped, total, sha)


def _busy(state: dict) -> str:
    run = [s for s, v in state.items() if v["status"] == "running" and v["done"] < v["total"]]
    return f"shards running: {', '.join(run[:4])}{' ...' if len(run) > 4 else ''}" if run else "shards finishing"


def _merge(store, run_id: str, records: list[dict]) -> None:
    """Records from the shards into the driver's store: measurements first (a prediction marks done)."""
    rows: dict[str, list[dict]] = {"measurement": [], "prediction": []}
    for rec in records:
        kind = rec.get("type")
        if kind in rows:
            rows[kind].append({**rec["data"], f"{kind}_id": rec[f"{kind}_id"], "created_at": rec["created_at"]})
    if rows["measurement"]:
        store.add_measurements(run_id, rows["measurement"])
    if rows["prediction"]:
        store.add_predictions(run_id, rows["prediction"])


def _conclude(config, plan, store, run_id, state, results, errors, stopped, total, sha) -> RunOutcome:
    done = sum(v["done"] for v in state.values())
    failures = {s: e for s, e in errors.items() if e != "cancelled"}
    status = "failed" if failures else "completed" if done >= total and not stopped else "cancelled"
    if status == "completed" and done < total:
        status = "cancelled"
    infos = {r["model"]: r["model_info"] for r in results.values()}
    summary: dict[str, Any] = {"done": done, "total": total, "model_info": infos,
                               "shards": {s: {"model": v["model"], "done": v["done"], "total": v["total"],
                                              "node": v["node"], "status": v["status"], "error": errors.get(s)}
                                          for s, v in state.items()}}
    if failures:
        summary["error"] = "; ".join(f"shard {s}: {e}" for s, e in sorted(failures.items()))
    other = sorted({r["where"].get("git_sha") for r in results.values()} - {None, sha})
    warnings = list(plan.warnings) + ([f"Some shards ran commit {', '.join(o[:10] for o in other)} while this machine "
                                       f"runs {str(sha)[:10]}; check out the same commit on every node."]
                                      if other and sha else [])
    aggs: list[dict] = []
    extra: list[dict] = []
    if status == "completed":
        order = {i.id: n for n, i in enumerate(plan.instances)}
        models = {m: n for n, m in enumerate(config.models)}
        # plan order, as one process would hold them: the same sums, so the same aggregates to the last bit
        rows = sorted(_stored_predictions(store, run_id),
                      key=lambda r: (order.get(r["instance_id"], len(order)), models.get(r["model"], len(models))))
        families = {m: (i or {}).get("family") for m, i in infos.items()}
        aggs = aggregate(rows, families, plan.tasks)
        extra = plan.measure(plan, rows, families) if plan.measure is not None else []
        store.add_measurements(run_id, aggs + extra)
        summary["models"] = _model_summary(rows)
    _finish(store, run_id, status, summary)
    return RunOutcome(run_id, status, done, total, summary, warnings, summary.get("error"), aggs, extra)


class RayExperimentJob(ExperimentJob):
    """An experiment sent to a Ray cluster from the dashboard: the page's job, with per-shard progress."""

    def __init__(self, config: ExperimentConfig, store, address: str | None, device: str | None = None,
                 resume_run_id: str | None = None, shard_by: str = "model") -> None:
        super().__init__(config, None, store, resume_run_id=resume_run_id)
        self.address, self.device, self.shard_by = address, device, shard_by
        self.shards: dict[str, dict] = {}
        self.message = f"connecting to {address or 'a local Ray cluster'}"

    def _on_shards(self, state: dict) -> None:
        self.shards = state

    def _work(self) -> None:
        try:
            self.outcome = run_on_ray(self.config, self.store, address=self.address, device=self.device,
                                      progress=self._progress, should_stop=self.stop.is_set,
                                      resume_run_id=self.resume_run_id, shard_by=self.shard_by,
                                      on_shards=self._on_shards)
            self.status = self.outcome.status
            self.error = self.outcome.error
        except Exception as e:  # shown on the page as a sentence
            self.status, self.error = "failed", str(e) or type(e).__name__
        finally:
            self.finished_at = time.time()
