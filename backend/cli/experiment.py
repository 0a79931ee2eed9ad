"""`python -m backend experiment {fewshot,long-context,cot,rag} ...`: run an experiment headless.

Builds the same ExperimentConfig the experiment pages build (each page shows its equivalent command),
runs it with a tqdm progress bar and writes to the same store (DuckDB, or a JSONL file with --jsonl on
machines without duckdb). Ctrl-C cancels cleanly: finished instances are kept, the run is marked
"cancelled", and `--resume RUN_ID` continues it later. The last stdout line is a JSON record.

RAG on a machine without faiss / sentence-transformers (the GPU image): retrieve once where they are,
    python -m backend experiment rag --profile full --save-plan rag_plan.jsonl
then run the models on exactly those contexts there:
    python -m backend experiment rag --plan rag_plan.jsonl --models ... --jsonl results/exp_rag_gpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from backend.errors import CorruptModelError, ModelUnavailableError, UnknownModelError
from backend.experiments.config import (
    EXPERIMENTS,
    PROFILES,
    SWEEP_FLAGS,
    SWEEP_KEYS,
    ConfigError,
    ExperimentConfig,
    default_config,
    default_models,
    parse_list,
)
from backend.experiments.datasets import DatasetError
from backend.experiments.tasks import TaskError
from store import StoreError, open_store

HELP = "run the few-shot, long-context, chain-of-thought or RAG experiment"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("experiment", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--models", metavar="A,B,...",
                   help="comma-separated model names (default: the bundled Mamba, Mamba-2 and transformer)")
    p.add_argument("--n", type=int, help="instances per sweep point (same instances for every model)")
    p.add_argument("--seed", type=int, default=0)
    for key, (flag, typ) in SWEEP_FLAGS.items():
        exps = [e for e, keys in SWEEP_KEYS.items() if key in keys]
        p.add_argument(flag, dest=f"sweep_{key}", metavar=key.upper() + ",...",
                       help=f"comma-separated {typ.__name__} values ({', '.join(exps)})")
    p.add_argument("--task", help="built-in task (fewshot: arbitrary, new-labels, flipped, sentiment, workplace; "
                                  "long-context: passkey, recall, copy; cot: arithmetic; rag: toy-rag); the profile's "
                                  "n and sweep follow the task")
    p.add_argument("--data", help="a JSONL file of your own (fewshot: text/label, long-context: "
                                  "context/question/answer, cot: question/answer GSM8K style)")
    p.add_argument("--plan", metavar="FILE", help="rag: run on a plan saved with --save-plan (contexts already "
                                                  "retrieved: no faiss needed); n and k default to the file's")
    p.add_argument("--save-plan", dest="save_plan", metavar="FILE",
                   help="rag: retrieve the contexts, write the plan to FILE and exit (no model is loaded)")
    p.add_argument("--max-new-tokens", type=int, dest="max_new_tokens", metavar="N", help="override the task's limit")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="defaults for n and the sweep: quick (CPU, minutes) or full (the GPU run)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: SSM_ARENA_DEVICE or auto)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its stored config is used)")
    p.add_argument("--name", help="a label for the run")
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.add_argument("--jsonl", metavar="OUT", help="write JSONL records to OUT instead of DuckDB "
                                                  "(for GPU machines; load with `python -m backend import-results`)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes, each running a share of the models (overlaps per-token overhead on "
                        "one GPU; timings then share the device, so speed comparisons should use 1)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run as shards on a Ray cluster: its head's host:port, `auto` (the one `ray start` made "
                        "here), or no value for this machine alone (needs `pip install ray`; README: Ray)")
    p.add_argument("--shard-by", choices=("model", "point"), default="model",
                   help="with --ray: one shard per model, or per model x sweep point (more, smaller shards)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
    return p


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        models = default_models()
    cfg = default_config(args.experiment, models, args.profile, task="" if args.data else (args.task or ""))
    for key in SWEEP_KEYS[args.experiment]:
        raw = getattr(args, f"sweep_{key}", None)
        if raw:
            flag, typ = SWEEP_FLAGS[key]
            cfg.sweep[key] = parse_list(raw, typ, flag)
    for key, (flag, _) in SWEEP_FLAGS.items():
        if getattr(args, f"sweep_{key}", None) and key not in SWEEP_KEYS[args.experiment]:
            raise ConfigError(f"{flag} does not apply to the {args.experiment} experiment.")
    if args.n is not None:
        cfg.n = args.n
    cfg.seed = args.seed
    if args.task:
        cfg.task = args.task
    if args.data:
        if args.experiment == "rag":
            raise ConfigError("The rag experiment takes a saved plan: use --plan FILE (written by --save-plan).")
        cfg.data = args.data
        cfg.task = ""
    plan_file = getattr(args, "plan", None)
    if plan_file or getattr(args, "save_plan", None):
        if args.experiment != "rag":
            raise ConfigError("--plan and --save-plan apply to the rag experiment only.")
    if plan_file:
        cfg.data, cfg.task = plan_file, ""
        if args.n is None or not args.sweep_k:  # the file's own questions and k values
            ks, n = _plan_shape(plan_file)
            cfg.n = args.n if args.n is not None else n
            if not args.sweep_k:
                cfg.sweep["k"] = ks
    cfg.max_new_tokens = args.max_new_tokens
    cfg.validate()
    return cfg


def _plan_shape(path: str) -> tuple[list[int], int]:
    """(k values, number of questions) of a saved RAG plan."""
    from backend.experiments.rag import rag_file_plan

    probe = ExperimentConfig("rag", ["probe"], n=100_000, data=path)
    plan = rag_file_plan(probe)
    ks = sorted({int(i.params["k"]) for i in plan.instances})
    return ks, len({i.params.get("query", 0) for i in plan.instances})


def _save_plan(cfg: ExperimentConfig, path: str) -> int:
    from backend.experiments.plans import build_plan
    from backend.experiments.rag import save_rag_plan

    plan = build_plan(cfg)
    save_rag_plan(plan, path)
    print(f"Wrote {len(plan.instances)} instances ({cfg.n} questions x k in {cfg.sweep.get('k')}) to {path}. "
          f"Run them with: python -m backend experiment rag --plan {path}", file=sys.stderr)
    print(json.dumps({"plan": path, "instances": len(plan.instances), "n": cfg.n, "k": cfg.sweep.get("k")}))
    return 0


def _open_writer(args):
    if args.jsonl:
        from store import RecordWriter

        return RecordWriter(args.jsonl)

    return open_store(args.db)


def _stored_config(writer, args, run_id: str) -> ExperimentConfig:
    if args.jsonl:
        from store.records import iter_records

        found = [rec for _, rec, _ in iter_records(writer.path)
                 if rec and rec.get("type") == "run" and rec.get("run_id") == run_id]
        config = found[0]["config"] if found else None
    else:
        runs = writer.runs()
        hit = runs[runs["run_id"] == run_id] if not runs.empty else runs
        config = hit.iloc[0]["config"] if len(hit) else None
    if config is None:
        where = args.jsonl or "the results database"
        raise ConfigError(f"There is no run {run_id!r} in {where}; check the id (the History page lists runs).")
    cfg = ExperimentConfig.from_dict(config)
    if cfg.experiment != args.experiment:
        raise ConfigError(f"Run {run_id} is a {cfg.experiment} run; resume it with "
                          f"`python -m backend experiment {cfg.experiment} --resume {run_id}`.")
    return cfg


def _print_table(rows: list[dict]) -> None:
    """Aggregates of the primary filter, one line per (model, point)."""
    for r in rows:
        e = r["extra"]
        if "task" not in e:  # a plan's own measurement (e.g. RAG recall@k, token F1)
            point = ", ".join(f"{k}={v}" for k, v in e.get("params", {}).items())
            ci = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r.get("ci_low") is not None else ""
            print(f"{r['model']:<24} {r['metric']:<20} {point:<28} {'':<9} {r['value']:.3f}  {ci}  n={r['n']}")
            continue
        point = ", ".join(f"{k}={v}" for k, v in e["params"].items())
        print(f"{r['model']:<24} {e['task']:<20} {point:<28} {e['filter']:<9} "
              f"{r['value']:.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]  n={r['n']}")


def main(args: argparse.Namespace) -> int:
    from backend.experiments.runner import run_experiment

    stopping = {"flag": False}

    def on_sigint(signum, frame):
        if stopping["flag"]:
            raise KeyboardInterrupt
        stopping["flag"] = True
        print("\nStopping after the current instance (Ctrl-C again to abort at once) ...", file=sys.stderr)

    try:
        if getattr(args, "save_plan", None):
            return _save_plan(config_from_args(args), args.save_plan)
        writer = _open_writer(args)
        cfg = _stored_config(writer, args, args.resume) if args.resume else config_from_args(args)
        from backend.models.manager import ModelManager

        manager = ModelManager()
        device = args.device

        def get(name):
            return manager.get(name, device=device) if device else manager.get(name)

        bar = None
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=0, unit="inst", file=sys.stderr, dynamic_ncols=True)

        def progress(done: int, total: int, msg: str) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.set_postfix_str(msg[:40], refresh=False)
                bar.refresh()

        print(f"# {cfg.to_cli()}", file=sys.stderr)
        old = signal.signal(signal.SIGINT, on_sigint)
        try:
            if args.ray:
                from backend.experiments.ray_runner import run_on_ray

                out = run_on_ray(cfg, writer, address=None if args.ray == "local" else args.ray, device=device,
                                 progress=progress, should_stop=lambda: stopping["flag"], resume_run_id=args.resume,
                                 name=args.name, shard_by=args.shard_by)
            elif args.workers > 1:
                from backend.experiments.parallel import run_parallel

                out = run_parallel(cfg, writer, workers=args.workers, device=device, progress=progress,
                                   should_stop=lambda: stopping["flag"], resume_run_id=args.resume, name=args.name)
            else:
                out = run_experiment(cfg, get, writer, progress=progress, should_stop=lambda: stopping["flag"],
                                     resume_run_id=args.resume, name=args.name)
        finally:
            signal.signal(signal.SIGINT, old)
            if bar is not None:
                bar.close()
    except (ConfigError, TaskError, DatasetError, UnknownModelError, ModelUnavailableError, CorruptModelError,
            StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in out.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if out.status == "completed":
        _print_table([a for a in out.aggregates if a["extra"]["primary"]] + out.measurements)
    else:
        print(f"Run {out.run_id} {out.status} after {out.done}/{out.total} instances; finished ones are kept. "
              f"Continue with: python -m backend experiment {cfg.experiment} --resume {out.run_id}"
              + (f" --jsonl {args.jsonl}" if args.jsonl else "")
              + ("" if not args.ray else " --ray" if args.ray == "local" else f" --ray {args.ray}"), file=sys.stderr)
    print(json.dumps({"run_id": out.run_id, "experiment": cfg.experiment, "status": out.status, "done": out.done,
                      "total": out.total, "models": out.summary.get("models", {})}))
    return 0 if out.status == "completed" else 1
