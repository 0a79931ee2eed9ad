"""Run an experiment: every model on every instance of the plan, recorded as it goes.

    outcome = run_experiment(config, generators, store, progress=cb, should_stop=flag)

- `generators`: {name: Generator} or a callable name -> Generator (e.g. ModelManager().get).
- `store`: `store.open_store()` (DuckDB) or `store.RecordWriter(path)` (JSONL, for GPU machines).
- Records: `start_run(kind, config, meta)`; per finished instance one prediction (prompt, output,
  extracted, reference, score, params) and one measurement with its timing/memory; at the end one
  measurement per (model, task, sweep point, filter) with value, n and a 95% Wilson interval, plus the
  plan's own (`plan.measure`, e.g. RAG retrieval and answer metrics); then
  `finish_run(status)` with "completed", "cancelled" (should_stop said so or the caller was interrupted,
  e.g. Streamlit stopped the script) or "failed".
- Resume: `resume_run_id` skips what `store.done_instances(run_id, model)` lists; the config must be
  the run's own (the CLI reads it back from the store).
- Instances go in order, and for each instance every model in turn, so a cancelled run leaves
  comparable partial results for all models.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backend.experiments.config import ExperimentConfig
from backend.experiments.metrics import METRICS, extract, truncate_at_stop, wilson_interval
from backend.experiments.plans import build_plan
from backend.experiments.registry import Plan
from backend.experiments.tasks import INSTANCE_KEYS, Instance, TaskSpec, elide, render_prompt
from backend.generation.interface import GenerationError, GenerationResult, Generator
from backend.models.weights import ensure_weights
from store.records import iter_records

Progress = Callable[[int, int, str], None]  # (done, total, message)


@dataclass
class RunOutcome:
    run_id: str
    status: str  # completed | cancelled | failed
    done: int  # (instance, model) pairs finished, this session and before
    total: int
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    aggregates: list[dict] = field(default_factory=list)  # the accuracy measurements written at the end
    measurements: list[dict] = field(default_factory=list)  # the plan's own (plan.measure), written with them


def weights_sha256(name: str) -> str | None:
    """sha256 of a bundled or local model's weights file (ties results to the exact checkpoint)."""
    try:
        from pathlib import Path

        from backend.models import registry

        spec = registry.get_spec(name)
        if spec.source == "hf":
            return None
        ensure_weights(spec.location)  # the hash of the unpacked bytes, the same as before they were packed
        files = sorted(Path(spec.location).glob("*.safetensors"))
    except Exception:  # unknown to the registry (tests, fakes) or not a folder
        return None
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def model_info(gen: Generator) -> dict[str, Any]:
    """What a run records about each model (meta.model_info): the pages read train_context from it."""
    i = gen.info
    return {"family": i.family, "device": i.device, "dtype": i.dtype, "path": i.path, "n_params": i.n_params,
            "train_context": i.train_context, "placeholder": i.placeholder,
            "weights_sha256": None if i.path == "fake" else weights_sha256(i.name)}


def _generate_until(gen: Generator, prompt: str, settings, stops: list[str],
                    should_stop: Callable[[], bool] | None) -> tuple[GenerationResult, bool]:
    """Greedy generation that ends as soon as the text contains a stop string (lm-eval's `until`).

    The Generator has no stop strings, so this watches the streamed text and ends the stream through its
    `should_stop` hook (polled between tokens). Returns (result, whether a stop string ended it).
    """
    text, hit = "", False

    def stop_now() -> bool:
        return hit or bool(should_stop and should_stop())

    result = None
    for ev in gen.stream(prompt, settings, stop_now):
        if isinstance(ev, GenerationResult):
            result = ev
        elif stops and not hit:
            text += ev.text
            hit = any(s and s in text for s in stops)
    assert result is not None, "stream() must end with a GenerationResult"
    return result, hit


def evaluate(task: TaskSpec, inst: Instance, gen: Generator, config: ExperimentConfig,
             should_stop: Callable[[], bool] | None = None) -> tuple[dict, dict] | None:
    """Run one instance on one model. Returns (prediction row, measurement row), or None if cancelled."""
    prompt = render_prompt(task, inst)
    params = {**inst.params, "task": task.name, "task_version": task.version}
    extra: dict[str, Any] = {}
    meas: dict[str, Any] = {"model": gen.info.name, "family": gen.info.family, "device": gen.info.device,
                            "dtype": gen.info.dtype, "batch": 1, "path": gen.info.path, "warmup": 0, "repeats": 1}
    t0 = time.perf_counter()
    try:
        if task.output_type == "choices":
            choices = [str(c) for c in inst.doc[task.choices_field]]
            lls = gen.loglikelihood([(prompt, task.choice_prefix + c) for c in choices])
            best = max(range(len(choices)), key=lambda i: lls[i][0])
            output = extracted = choices[best]
            score = float(choices[best] == inst.reference)
            extra["choice_logprobs"] = {c: ll for c, (ll, _) in zip(choices, lls, strict=True)}
            meas.update(prompt_tokens=gen.count_tokens(prompt), new_tokens=0,
                        total_ms=(time.perf_counter() - t0) * 1e3)
            extra["scores"] = {"acc": score}
        else:
            settings = replace(config.settings, max_new_tokens=config.max_new_tokens or task.max_new_tokens)
            res, hit_stop = _generate_until(gen, prompt, settings, task.stop, should_stop)
            if res.finish_reason == "cancelled" and not hit_stop:
                return None
            output = res.text
            answer_text = truncate_at_stop(output, task.stop)
            found = {name: extract(rule, answer_text) for name, rule in task.extract.items()}
            scores = {name: (METRICS[task.filter_metrics.get(name, task.metric)](val, inst.reference) if val else 0.0)
                      for name, val in found.items()}
            extracted, score = found[task.primary], scores[task.primary]
            extra.update(extracted=found, scores=scores, rules=dict(task.extract), scored_chars=len(answer_text),
                         finish_reason="stop" if hit_stop else res.finish_reason)
            m = res.metrics
            meas.update({k: getattr(m, k) for k in (
                "prompt_tokens", "new_tokens", "ttft_ms", "prefill_ms", "tpot_ms", "tpot_p90_ms", "decode_tok_s",
                "total_ms", "peak_mem_bytes", "peak_mem_kind", "cache_bytes", "cache_kind", "path", "device",
                "dtype")})
            if m.cache_alloc_bytes is not None:  # a static cache: its whole allocation beside the bytes in use
                meas["cache_alloc_bytes"] = m.cache_alloc_bytes
    except GenerationError as e:  # e.g. the prompt is beyond this model's limit: recorded, not scored
        output, extracted, score = "", "", None
        extra["error"] = str(e)
        meas.update(total_ms=(time.perf_counter() - t0) * 1e3)
    params["prompt_tokens"] = meas.get("prompt_tokens")
    if task.store_prompt_chars is not None and len(prompt) > task.store_prompt_chars:
        extra.update(prompt_chars=len(prompt), prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest())
    pred = {"instance_id": inst.id, "model": gen.info.name, "prompt": elide(prompt, task.store_prompt_chars),
            "output": output,
            "extracted": extracted, "reference": inst.reference, "score": score, "params": params, "extra": extra}
    meas["extra"] = {"instance_id": inst.id, "params": params, "experiment": config.experiment}
    return pred, meas


def aggregate(rows: list[dict], families: Mapping[str, str], tasks: Mapping[str, TaskSpec] | None = None) -> list[dict]:
    """One measurement per (model, task, sweep point, filter): mean score, n, Wilson 95% interval.

    `extra.primary` marks the task's primary filter (the one reported as each prediction's score)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    versions: dict = {}
    for r in rows:
        scores = (r.get("extra") or {}).get("scores") or {}
        if r.get("score") is None or not scores:
            continue
        p = r["params"]
        point = tuple(sorted((k, v) for k, v in p.items() if k not in INSTANCE_KEYS))
        for filt, val in scores.items():
            groups[(r["model"], p.get("task"), point, filt)].append(float(val))
        versions[p.get("task")] = p.get("task_version")
    out = []
    def order(kv):  # numbers sort as numbers (k=2 before k=16)
        model, task, point, filt = kv[0]
        return (str(model), str(task), [(k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))
                                        for k, v in point], str(filt))

    for (model, task, point, filt), vals in sorted(groups.items(), key=order):
        n, total = len(vals), sum(vals)
        lo, hi = wilson_interval(total, n)
        out.append({"model": model, "family": families.get(model), "metric": f"accuracy[{filt}]",
                    "value": total / n, "n": n, "ci_low": lo, "ci_high": hi,
                    "extra": {"task": task, "filter": filt, "params": dict(point),
                              "task_version": versions.get(task),
                              "primary": bool(tasks and task in tasks and tasks[task].primary == filt)}})
    return out


class _Buffer:
    """Batches prediction/measurement writes (one store transaction costs ~0.1 s on a busy 2-core box).

    Flushed every `every_s` seconds or `max_rows` rows, and always before the run ends (also when it is
    cancelled or fails), so a hard kill loses at most the last few seconds of work; a resume redoes those.
    """
    def __init__(self, store, run_id: str, every_s: float = 2.0, max_rows: int = 64) -> None:
        self.store, self.run_id, self.every_s, self.max_rows = store, run_id, every_s, max_rows
        self.preds: list[dict] = []
        self.meas: list[dict] = []
        self.last = time.monotonic()

    def add(self, pred: dict, meas: dict) -> None:
        self.preds.append(pred)
        self.meas.append(meas)
        if len(self.preds) >= self.max_rows or time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.preds:
            # measurements first: a prediction marks the instance done, so it must never exist alone
            self.store.add_measurements(self.run_id, self.meas)
            self.store.add_predictions(self.run_id, self.preds)
        self.preds, self.meas, self.last = [], [], time.monotonic()


def _stored_predictions(store, run_id: str) -> list[dict]:
    """Every prediction of a run, one per (instance, model) (DuckDB store or JSONL RecordWriter)."""
    seen: dict[tuple, dict] = {}
    for r in _read_predictions(store, run_id):
        seen.setdefault((r.get("instance_id"), r.get("model")), r)
    return list(seen.values())


def _read_predictions(store, run_id: str) -> list[dict]:
    if hasattr(store, "predictions"):
        df = store.predictions(run_id=run_id)
        return [] if df is None or df.empty else df.to_dict("records")

    rows = []
    if store.path.exists():
        for _, rec, _ in iter_records(store.path):
            if rec and rec.get("type") == "prediction" and rec.get("run_id") == run_id:
                rows.append(rec["data"])
    return rows


def run_experiment(config: ExperimentConfig, generators: Mapping[str, Generator] | Callable[[str], Generator],
                   store, *, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                   resume_run_id: str | None = None, plan: Plan | None = None, meta: dict | None = None,
                   name: str | None = None) -> RunOutcome:
    config.validate()
    get = generators.__getitem__ if isinstance(generators, Mapping) else generators
    stop = should_stop or (lambda: False)
    gens = {m: get(m) for m in config.models}  # load errors surface before a run is recorded
    families = {m: g.info.family for m, g in gens.items()}
    plan = plan or build_plan(config, count_tokens=gens[config.models[0]].count_tokens)
    if resume_run_id:
        run_id = resume_run_id
    else:
        if meta is None:
            from backend.runinfo import run_meta

            meta = run_meta()
        meta = {**meta, "models": list(config.models), "seed": config.seed, "n_instances": len(plan.instances),
                "model_info": {m: model_info(g) for m, g in gens.items()}}
        run_id = store.start_run(config.kind, config.to_dict(), meta, name=name)
    total = len(plan.instances) * len(config.models)
    done_ids = {m: set(store.done_instances(run_id, m)) if resume_run_id else set() for m in config.models}
    done = sum(len(done_ids[m] & {i.id for i in plan.instances}) for m in config.models)
    rows: list[dict] = []
    buffer = _Buffer(store, run_id)
    status, error = "completed", None
    try:
        if progress:
            progress(done, total, "starting")
        for inst in plan.instances:
            task = plan.tasks[inst.task]
            for model, gen in gens.items():
                if inst.id in done_ids[model]:
                    continue
                if stop():
                    status = "cancelled"
                    break
                result = evaluate(task, inst, gen, config, stop)
                if result is None:
                    status = "cancelled"
                    break
                pred, meas = result
                buffer.add(pred, meas)
                rows.append(pred)
                done += 1
                if progress:
                    progress(done, total, f"{model}: {inst.id}")
            if status == "cancelled":
                break
        buffer.flush()
    except BaseException as e:  # Streamlit's StopException, KeyboardInterrupt, a crash: keep what finished
        status = "cancelled" if not isinstance(e, Exception) else "failed"
        error = str(e) or type(e).__name__
        try:
            buffer.flush()
            _finish(store, run_id, status, {"done": done, "total": total, "error": error})
        except Exception:  # the store itself may be what failed; the original error matters more
            pass
        raise
    summary: dict[str, Any] = {"done": done, "total": total}
    if status == "completed":
        all_rows = _stored_predictions(store, run_id) if resume_run_id else rows
        aggs = aggregate(all_rows, families, plan.tasks)
        # e.g. RAG: recall@k, MRR, token F1, faithfulness
        extra = plan.measure(plan, all_rows, families) if plan.measure is not None else []
        store.add_measurements(run_id, aggs + extra)
        summary["models"] = _model_summary(all_rows)
    else:
        aggs, extra = [], []
    _finish(store, run_id, status, summary)
    return RunOutcome(run_id, status, done, total, summary, list(plan.warnings), error, aggs, extra)


def _model_summary(rows: list[dict]) -> dict[str, dict]:
    """Mean primary score per model over every scored instance (the runs table's one-line view)."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("score") is not None and not (isinstance(r["score"], float) and math.isnan(r["score"])):
            per[r["model"]].append(float(r["score"]))
    return {m: {"score": sum(v) / len(v), "n": len(v)} for m, v in per.items()}


def _finish(store, run_id: str, status: str, summary: dict) -> None:
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    store.finish_run(run_id, status, summary)
