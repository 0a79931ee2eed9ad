"""The benchmark sweep: prompt length x new tokens at batch 1, batch size at the Mamba paper's setting,
out-of-memory caught and recorded, a time budget, one store run with a row per point.

Order per model (most important first, so a time budget cuts the least useful points):
  1. context sweep at batch 1: every prompt length up to `long_from` (exclusive), each new-token count
  2. batch sweep at (batch_prompt_len, batch_new_tokens): batches in order until one runs out of
     memory or `max_batch`; then one "max_batch" row (largest batch that ran, and the one that did not), after
     `refine_batch` bisection steps between the two (run once the other phases are done; rows `refined`)
  3. baselines: plain HF `generate()` (path "hf-generate") and, for transformers, the shared eager
     loop with a DynamicCache (path "eager"), at batch 1, labelled, never the model's own number (a hybrid's
     own path is that eager loop already, so it gets no separate eager row)
  4. the long prompts (>= long_from) at batch 1, until one runs out of memory
An out-of-memory point is recorded (status "oom") and frees its memory; longer prompts (or larger
batches) for that model are then skipped, since they would need more.

Time budgets only stop *starting* points. Each model's limit is the smaller of `budget_per_model_s` and,
with `budget_s`, its fair share of what is left (time left / models left), so one slow model cannot eat the
time of the models after it (a model that finishes early leaves its rest to the others). A batch or long
point whose predicted time (the previous point of that phase, scaled by batch x prompt tokens) exceeds what
is left is not started either. Every row records `point_s` (wall seconds for the point, warm-up included)
and `model_elapsed_s` (seconds since the model's load began), so later runs can be planned from the data.

Families: "transformer", the pure SSMs "mamba" / "mamba2", and "hybrid" (Bamba: Mamba-2 and attention layers;
`backend.bench.steppers` says which path each gets). Families with attention (transformer, hybrid) skip prompts
past `max_position_embeddings`; families with Mamba layers (SSMs, hybrid) fall back to Hugging Face's torch
path when our kernels fail. Every row of a model carries `state_bytes` and `kv_bytes_per_token` (its cache for
one sequence: what stays whatever the length, what each token adds) when they could be measured.
Models are named by shape (backend.bench.shapes) or as local folders registered in the model registry.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict

import torch

from backend.bench import measure as M
from backend.bench import steppers as S
from backend.bench.plan import SweepConfig, _Plan, plan_points
from backend.bench.plan import predicted_s as _predicted_s
from backend.bench.shapes import Shape, partner_of, resolve_shapes
from backend.device import device_name, resolve_device, resolve_dtype
from backend.runinfo import run_meta

log = logging.getLogger(__name__)
RUN_KIND = "bench"
__all__ = ["Sweep", "SweepConfig", "is_oom", "plan_points", "point_counts", "run_sweep"]


def point_counts(rows: list[dict]) -> dict:
    """points / ok / oom / errors over the measured points (each model's max_batch row only summarises)."""
    pts = [r["status"] for r in rows if r["metric"] == "point"]
    return {"points": len(pts), "ok": pts.count("ok"), "oom": pts.count("oom"), "errors": pts.count("error")}


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError | MemoryError) and "out of memory" in str(exc).lower()


def _meta(device: torch.device) -> dict:
    """backend.runinfo.run_meta (git sha, or SSM_ARENA_GIT_SHA where the tree came without .git; versions;
    device_name: the GPU's or the CPU model) plus the versions gathered in one `versions` dict."""
    meta = dict(run_meta(device=str(device)))
    meta["versions"] = {k: meta.get(k) for k in ("torch", "transformers", "triton", "python", "cuda", "hip")}
    return meta


def _max_positions(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


class Sweep:
    """Runs a SweepConfig and writes one run (kind "bench") to `writer` (store or RecordWriter).

    `load_model(shape, device, dtype) -> (model, kernel_path)` and
    `make_stepper(kind, model, family, device, new_tokens)` (and `measure_point`, `measure_hf`, `model_facts`) are
    injectable for tests. `run_model(sweep, name)`
    is how one model is run: in this process by default; `backend.bench.isolate.run_model_in_child` runs it
    in a child process (what `python -m backend bench` passes when the config asks for isolation)."""
    def __init__(self, cfg: SweepConfig, writer, shapes: dict[str, Shape] | None = None,
                 load_model: Callable | None = None, make_stepper: Callable | None = None,
                 measure_point: Callable | None = None, measure_hf: Callable | None = None,
                 progress: Callable[[str], None] | None = None,
                 run_model: Callable[[Sweep, str], None] | None = None, model_facts: Callable | None = None):
        cfg.validate()
        if cfg.isolate and run_model is None:
            raise ValueError("SweepConfig.isolate needs run_model=backend.bench.isolate.run_model_in_child "
                             "(run_sweep passes it).")
        self.cfg = cfg
        self.writer = writer
        self.shapes = resolve_shapes(cfg.models, shapes)  # ValueError for an unknown name
        self.load_model = load_model or S.load_model
        self.make_stepper = make_stepper or S.make_stepper
        self.measure_point = measure_point or M.measure_point
        self.measure_hf = measure_hf or M.measure_hf_generate
        self.model_facts = model_facts or S.model_facts
        self.progress = progress or (lambda msg: log.info(msg))
        self.run_model = run_model or Sweep._run_model
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.rows: list[dict] = []
        self.not_run: list[str] = []
        self._eager_only: set[str] = set()  # models whose fast path failed: the shared eager loop from then on
        self.on_point: Callable | None = None  # called with each plan before it is measured (child processes)
        self._model_limit: float | None = None  # this model's time limit (see model_limit)
        self._model_t0 = self._t_point = None  # when the current model / point began (for row timings)
        self._refining = False  # a batch point of `_refine_batch` (its rows say `refined`)
        self._facts: dict = {}  # the current model's columns on every row (steppers.model_facts)
        self._round = 0  # which pass over the model list (SweepConfig.rounds)

    # ---- the run ------------------------------------------------------------------------------
    def run(self, name: str | None = None) -> str:
        self.meta = _meta(self.device)
        config = {**asdict(self.cfg), "device_resolved": str(self.device), "dtype_resolved": str(self.dtype)}
        run_id = self.writer.start_run(RUN_KIND, config, self.meta, name=name)
        self.run_id = run_id
        self._t0 = time.perf_counter()
        status = "failed"
        try:
            order = [m for _ in range(self.cfg.rounds) for m in self.cfg.models]
            for i, model_name in enumerate(order):
                self._round = i // len(self.cfg.models)
                self._model_limit = self.model_limit(len(order) - i)
                self.run_model(self, model_name)
            status = "completed"
        except KeyboardInterrupt:
            status = "cancelled"
            raise
        finally:
            summary = {**point_counts(self.rows), "not_run": list(dict.fromkeys(self.not_run)),  # once each, whatever --rounds
                       "elapsed_s": round(time.perf_counter() - self._t0, 1)}
            self.writer.finish_run(run_id, status, summary)
        return run_id

    def model_limit(self, models_left: int) -> float | None:
        """Seconds the next model may use: min(budget_per_model_s, fair share of the sweep's budget left)."""
        limits = [self.cfg.budget_per_model_s] if self.cfg.budget_per_model_s is not None else []
        if self.cfg.budget_s is not None:
            left = max(0.0, self.cfg.budget_s - (time.perf_counter() - self._t0))
            limits.append(left / max(1, models_left))
        return min(limits) if limits else None

    def _time_left(self, model_t0: float) -> float | None:
        now = time.perf_counter()
        left = []
        if self.cfg.budget_s is not None:
            left.append(self.cfg.budget_s - (now - self._t0))
        limit = self._model_limit if self._model_limit is not None else self.cfg.budget_per_model_s
        if limit is not None:
            left.append(limit - (now - model_t0))
        return min(left) if left else None

    def _over_budget(self, model_t0: float) -> bool:
        left = self._time_left(model_t0)
        return left is not None and left < 0

    def _run_model(self, model_name: str) -> None:
        shape = self.shapes[model_name]
        self._model_t0 = self._t_point = model_t0 = time.perf_counter()
        self._facts = {}
        if self._over_budget(model_t0):
            self.not_run.append(f"{model_name}: all points (time budget spent)")
            return
        self.progress(f"loading {model_name} ({shape.family}) on {self.device}, {self.dtype}")
        try:
            model, kernel_path = self.load_model(shape, self.device, self.dtype)
        except Exception as e:  # noqa: BLE001 - one model failing must not stop the sweep
            self._record(shape, _Plan("load", 1, 0, 0), None, status="oom" if is_oom(e) else "error", error=e)
            M.free_memory(self.device)
            return
        self._facts = self.model_facts(model, shape.family)
        # attention layers (a transformer's, a hybrid's) have a trained position limit; a pure SSM has none
        limit = _max_positions(model) if S.has_attention(shape.family) else None
        oom_len: dict[int, int] = {}  # new_tokens -> shortest prompt that ran out of memory
        last_cost: dict[str, tuple[int, float]] = {}  # phase -> (batch x prompt tokens, seconds) of its last point
        batch_ok, batch_oom, batch_stop = 0, None, "end_of_list"
        try:
            for plan in plan_points(self.cfg):
                label = f"{model_name} {plan.phase} B={plan.batch} L={plan.prompt_len} N={plan.new_tokens}"
                if plan.phase == "hf-generate" and self._over_budget(model_t0):
                    self.not_run.append(f"{label} (time budget spent)")
                    continue
                if plan.phase == "eager" and shape.family != "transformer":
                    continue  # the SSMs' eager loop is their default stepper when no kernel stepper; a hybrid's always
                if limit and plan.prompt_len + plan.new_tokens > limit:
                    self.not_run.append(f"{label} (beyond max_position_embeddings={limit})")
                    continue
                if plan.phase in ("context", "long") and plan.prompt_len >= oom_len.get(plan.new_tokens, 1 << 62):
                    self.not_run.append(f"{label} (a shorter prompt ran out of memory)")
                    continue
                if plan.phase == "batch" and batch_oom is not None:
                    continue
                if self._over_budget(model_t0):
                    self.not_run.append(f"{label} (time budget spent)")
                    if plan.phase == "batch" and batch_stop == "end_of_list":
                        batch_stop = "time_budget"
                    continue
                predicted = _predicted_s(last_cost.get(plan.phase), plan)
                left = self._time_left(model_t0)
                if predicted is not None and left is not None and predicted > left:
                    self.not_run.append(f"{label} (predicted {predicted:.0f} s, {max(left, 0):.0f} s of the time "
                                        "budget left)")
                    if plan.phase == "batch" and batch_stop == "end_of_list":
                        batch_stop = "time_budget"
                    continue
                row, kernel_path = self._point(shape, model, kernel_path, plan, label)
                t_point, now = self._t_point, time.perf_counter()
                if row["status"] == "ok" and plan.phase in ("batch", "long"):
                    last_cost[plan.phase] = (plan.batch * plan.prompt_len, now - t_point)
                if row["status"] == "oom":
                    if plan.phase in ("context", "long"):
                        oom_len[plan.new_tokens] = min(plan.prompt_len, oom_len.get(plan.new_tokens, 1 << 62))
                    elif plan.phase == "batch":
                        batch_oom, batch_stop = plan.batch, "oom"
                elif row["status"] == "ok" and plan.phase == "batch":
                    batch_ok = max(batch_ok, plan.batch)
            if any(p.phase == "batch" for p in plan_points(self.cfg)):
                batch_ok, batch_oom = self._refine_batch(shape, model, kernel_path, batch_ok, batch_oom, last_cost)
                self._record_max_batch(shape, kernel_path, batch_ok, batch_oom, batch_stop)
        finally:
            del model
            M.free_memory(self.device)

    def _point(self, shape: Shape, model, kernel_path: str, plan: _Plan, label: str) -> tuple[dict, str]:
        """Measure one point (its row recorded); if our SSM fast path (a hybrid's Mamba layers too) fails, say so
        and measure it again on Hugging Face's torch path, which the model keeps for the rest."""
        self.progress(label)
        if self.on_point is not None:
            self.on_point(plan)
        self._t_point = time.perf_counter()
        row = self._measure(shape, model, kernel_path, plan)
        if row["status"] == "error" and S.has_ssm_layers(shape.family) and kernel_path != "hf-torch":
            kernel_path = self._fall_back(model, shape, row)
            self.progress(f"{label}: fast path failed ({row['error']}); again on {kernel_path}")
            self._t_point = time.perf_counter()
            row = self._measure(shape, model, kernel_path, plan)
        return row, kernel_path

    def _refine_batch(self, shape: Shape, model, kernel_path: str, ok: int, oom: int | None,
                      last_cost: dict) -> tuple[int, int | None]:
        """Bisect between the largest batch that ran and the one that ran out of memory (cfg.refine_batch
        steps, batches rounded to multiples of 8): with batches in powers of two, a model whose cache fits 1.9x
        the last batch that ran would otherwise be compared at half its capacity. Rows are ordinary "batch"
        points with `refined` set."""
        for _ in range(self.cfg.refine_batch):
            if oom is None or not ok:
                break
            mid = (ok + oom) // 2
            mid = mid // 8 * 8 if oom - ok >= 16 else mid
            if not ok < mid < oom:
                break
            plan = _Plan("batch", mid, self.cfg.batch_prompt_len, self.cfg.batch_new_tokens)
            label = f"{shape.name} batch B={mid} L={plan.prompt_len} N={plan.new_tokens} (refining the largest batch)"
            predicted, left = _predicted_s(last_cost.get("batch"), plan), self._time_left(self._model_t0)
            if self._over_budget(self._model_t0) or (predicted is not None and left is not None and predicted > left):
                self.not_run.append(f"{label} (time budget)")
                break
            self._refining = True
            try:
                row, kernel_path = self._point(shape, model, kernel_path, plan, label)
            finally:
                self._refining = False
            if row["status"] == "ok":
                ok = mid
            elif row["status"] == "oom":
                oom = mid
            else:
                break
        return ok, oom

    def _fall_back(self, model, shape: Shape, failed_row: dict) -> str:
        try:
            from backend.generation import ssm_fast

            ssm_fast.disable(model)
        except Exception as e:  # noqa: BLE001 - nothing more to undo
            log.warning("could not disable the fast SSM path: %s", e)
        model.arena_path = "hf-torch"
        self._eager_only.add(shape.name)
        self.not_run.append(f"{shape.name}: fast path failed at {failed_row['phase']} B={failed_row['batch']} "
                            f"L={failed_row['prompt_tokens']} ({failed_row.get('error')}); later points use hf-torch")
        return "hf-torch"

    def _measure(self, shape: Shape, model, kernel_path: str, plan: _Plan) -> dict:
        cfg = self.cfg
        try:
            if plan.phase == "hf-generate":
                metrics = self.measure_hf(model, prompt_len=plan.prompt_len, new_tokens=plan.new_tokens,
                                          device=self.device, warmup=cfg.warmup, repeats=cfg.repeats, seed=cfg.seed)
            else:
                kind = "eager" if plan.phase == "eager" or shape.name in self._eager_only else "best"

                def make():
                    return self.make_stepper(kind, model, shape.family, self.device, plan.new_tokens)

                metrics = self.measure_point(model, make, batch=plan.batch, prompt_len=plan.prompt_len,
                                             new_tokens=plan.new_tokens, device=self.device, warmup=cfg.warmup,
                                             repeats=cfg.repeats, seed=cfg.seed, slow_run_s=cfg.slow_run_s)
            return self._record(shape, plan, metrics, kernel_path=kernel_path, model=model)
        except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
            oom = is_oom(e)
            if not oom:
                log.warning("benchmark point failed: %s", traceback.format_exc(limit=3))
            e.__traceback__ = None  # drop frame references that pin GPU tensors
            M.free_memory(self.device)
            return self._record(shape, plan, None, status="oom" if oom else "error", error=e, kernel_path=kernel_path)

    # ---- rows -----------------------------------------------------------------------------------
    def _base_row(self, shape: Shape, plan: _Plan, kernel_path: str | None) -> dict:
        return {
            "model": shape.name,
            "family": shape.family,
            "device": self.meta.get("device_name") or device_name(self.device),
            "device_kind": self.device.type,  # "cpu" rows are CPU timings, labelled as such on the page
            "dtype": str(self.dtype).replace("torch.", ""),
            "batch": plan.batch,
            "prompt_tokens": plan.prompt_len,
            "new_tokens": plan.new_tokens,
            "phase": plan.phase,
            "partner": partner_of(shape.name, {m: self.shapes[m].family for m in self.cfg.models}),
            "kernel_path": kernel_path,
            "weights": shape.weights,
            "warmup": self.cfg.warmup,
            "repeats": self.cfg.repeats,
            "versions": self.meta.get("versions"),
            "git_sha": self.meta.get("git_sha"),
            "seed": self.cfg.seed,
            "round": self._round,
            **self._facts,
        }

    def _record(self, shape: Shape, plan: _Plan, metrics: dict | None, status: str = "ok",
                error: BaseException | None = None, kernel_path: str | None = None, model=None) -> dict:
        row = self._base_row(shape, plan, kernel_path)
        row["metric"] = "point"
        if metrics:
            row.update(metrics)
            if plan.phase == "hf-generate" or plan.phase == "eager":
                row["path"] = metrics["path"] if plan.phase == "hf-generate" else f"eager:{metrics['path']}"
            row["value"] = metrics.get("decode_tok_s_batch")
        else:
            row["path"] = "hf-generate" if plan.phase == "hf-generate" else None
        if model is not None:
            row["model_bytes"] = M.model_bytes(model)
        if self._t_point is not None:
            now = time.perf_counter()
            row["point_s"] = round(now - self._t_point, 3)
            row["model_elapsed_s"] = round(now - self._model_t0, 3)
        row["status"] = status
        if self._refining:
            row["refined"] = True
        if error is not None:
            row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        self.rows.append(row)
        self.writer.add_measurements(self.run_id, [row])
        return row

    def _record_max_batch(self, shape: Shape, kernel_path: str, ok: int, oom_at: int | None, stopped_by: str) -> None:
        """The largest batch that ran at the paper setting; `stopped_by`: "oom" (the next batch ran out of
        memory), "end_of_list" (every batch tried ran: the true maximum is higher), "time_budget"."""
        plan = _Plan("max_batch", ok, self.cfg.batch_prompt_len, self.cfg.batch_new_tokens)
        row = self._base_row(shape, plan, kernel_path)
        row.update({"metric": "max_batch", "value": float(ok), "status": "ok",
                    "oom_at": oom_at, "capped": stopped_by == "end_of_list", "stopped_by": stopped_by,
                    "path": next((r.get("path") for r in reversed(self.rows)
                                  if r["model"] == shape.name and r["phase"] == "batch" and r["status"] == "ok"), None)})
        self.rows.append(row)
        self.writer.add_measurements(self.run_id, [row])


def run_sweep(cfg: SweepConfig, writer, name: str | None = None, **kw) -> tuple[str, list[dict]]:
    sweep = Sweep(cfg, writer, **kw)
    run_id = sweep.run(name=name)
    return run_id, sweep.rows
