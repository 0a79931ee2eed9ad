"""Run one model of a sweep in a child process, so that a crash loses one model, not the sweep.

A CUDA error such as "an illegal memory access was encountered" poisons the whole process: every later
CUDA call fails. With `SweepConfig.isolate` the parent (which owns the run and the writer) starts
`python -m backend bench-child FOLDER` per model (`child_main`); the child measures that model with the same `Sweep`
code, appends its rows to a private JSONL file and records the point it is about to measure in a state
file. The parent forwards the rows to its writer. When the child dies, the parent records an "error" row
for the point it died in (with the child's last error line), a "max_batch" row if the batch sweep was cut,
and goes on with the next model.

Time: the child gets the parent's limit for this model (`Sweep.model_limit`: per-model budget or fair
share of the sweep's budget left), counted from when the parent started it (imports and load included).
A child still running `KILL_GRACE` past that limit (a hung point, or one far slower than predicted) is
killed; its rows so far are kept and the point it was in is recorded as an error.

Fault injection for tests: SSM_ARENA_BENCH_CRASH_AT="model:phase:batch:prompt_len" makes the child exit
abruptly (as a crashed process would) just before measuring that point; SSM_ARENA_BENCH_HANG_AT (same
form) makes it hang there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from backend.bench.shapes import Shape
from backend.bench.sweep import Sweep, SweepConfig, _Plan
from store import RecordWriter
from store.records import iter_records

STATE, ROWS, SPEC = "state.json", "rows.jsonl", "spec.json"


MIN_GRACE_S = 60.0


def kill_after_s(limit: float | None) -> float | None:
    """Seconds after which a child past its time limit is killed: the limit plus max(60 s, half of it)
    (budgets only stop starting points; the last point may legitimately run over)."""
    return None if limit is None else max(0.0, limit) + max(MIN_GRACE_S, 0.5 * limit)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, default=str))
    os.replace(tmp, path)


def run_model_in_child(sweep: Sweep, model_name: str) -> None:
    shape = sweep.shapes[model_name]
    cfg = asdict(sweep.cfg)
    cfg.update(models=[model_name], isolate=False, rounds=1)
    if sweep.cfg.budget_s is not None:
        cfg["budget_s"] = max(0.0, sweep.cfg.budget_s - (time.perf_counter() - sweep._t0))
    limit = sweep._model_limit
    cfg["budget_per_model_s"] = limit
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        _write_json(tmp / SPEC, {"cfg": cfg, "shape": asdict(shape), "run_id": sweep.run_id, "meta": sweep.meta,
                                 "spawn_wall": time.time()})
        proc = subprocess.Popen([sys.executable, "-m", "backend", "bench-child", str(tmp)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        killed: list[float] = []
        timer = None
        if kill_after_s(limit) is not None:
            def _kill() -> None:
                killed.append(kill_after_s(limit))
                proc.kill()

            timer = threading.Timer(kill_after_s(limit), _kill)
            timer.daemon = True
            timer.start()
        err_lines: list[str] = []
        for line in proc.stderr:  # relay the child's progress live; keep the rest for the error message
            line = line.rstrip("\n")
            if line.startswith("[bench] "):
                sweep.progress(line[len("[bench] "):])
            else:
                err_lines.append(line)
                print(line, file=sys.stderr)
        proc.wait()
        if timer is not None:
            timer.cancel()
        rows = []
        if (tmp / ROWS).exists():
            rows = [rec["data"] for _, rec, _ in iter_records(tmp / ROWS) if rec and rec.get("type") == "measurement"]
        for row in rows:
            row["round"] = sweep._round  # the child ran one pass; this is the parent's
            sweep.rows.append(row)
            sweep.writer.add_measurements(sweep.run_id, [row])
        state = json.loads((tmp / STATE).read_text()) if (tmp / STATE).exists() else {}
        sweep.not_run.extend(state.get("not_run", []))
        if proc.returncode == 0 and state.get("done"):
            return
        last = state.get("error") or next((ln for ln in reversed(err_lines) if "rror" in ln), "")
        if killed:
            last = (f"killed after {killed[0]:.0f} s, past its time limit of {limit:.0f} s plus grace "
                    "(a point hung or ran far longer than predicted)")
        reason = f"the benchmark process for {model_name} died (exit code {proc.returncode}): {last}".strip()
        _record_crash(sweep, shape, state.get("current"), reason, rows)


def _record_crash(sweep: Sweep, shape: Shape, current: dict | None, reason: str, rows: list[dict]) -> None:
    plan = _Plan(**current) if current else _Plan("load", 1, 0, 0)
    sweep._record(shape, plan, None, status="error", error=RuntimeError(reason))
    sweep.not_run.append(f"{shape.name}: points after {plan.phase} B={plan.batch} L={plan.prompt_len} not run "
                         f"({reason})")
    if any(r.get("metric") == "max_batch" for r in rows) or plan.phase not in ("load", "context", "batch"):
        return
    ok = [r["batch"] for r in rows if r.get("phase") == "batch" and r.get("status") == "ok"]
    sweep._record_max_batch(shape, rows[-1].get("kernel_path") if rows else None, max(ok, default=0), None,
                            "error")


def child_main(folder: str) -> int:
    tmp = Path(folder)
    spec = json.loads((tmp / SPEC).read_text())
    shape_d = spec["shape"]
    shape_d["kwargs"] = tuple(tuple(kv) for kv in shape_d.get("kwargs") or ())
    shape = Shape(**shape_d)
    state: dict = {"current": None, "done": False}
    crash_at = os.environ.get("SSM_ARENA_BENCH_CRASH_AT", "")

    def on_point(plan: _Plan) -> None:
        state["current"] = asdict(plan)
        _write_json(tmp / STATE, state)
        if crash_at == f"{shape.name}:{plan.phase}:{plan.batch}:{plan.prompt_len}":
            os._exit(134)  # what a hard crash looks like to the parent
        if os.environ.get("SSM_ARENA_BENCH_HANG_AT") == f"{shape.name}:{plan.phase}:{plan.batch}:{plan.prompt_len}":
            time.sleep(3600)  # what a hung point looks like

    def progress(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    sweep = Sweep(SweepConfig(**spec["cfg"]), RecordWriter(tmp / ROWS), shapes={shape.name: shape},
                  progress=progress)
    startup = max(0.0, time.time() - spec.get("spawn_wall", time.time()))  # process start, imports
    sweep.meta, sweep.run_id, sweep._t0 = spec["meta"], spec["run_id"], time.perf_counter() - startup
    if sweep.cfg.budget_per_model_s is not None:
        sweep._model_limit = sweep.cfg.budget_per_model_s - startup
    sweep.on_point = on_point
    try:
        sweep._run_model(shape.name)
        state["done"] = True
        return 0
    except BaseException as e:  # noqa: BLE001 - reported to the parent through the state file
        state["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        return 3
    finally:
        state["not_run"] = sweep.not_run
        _write_json(tmp / STATE, state)
