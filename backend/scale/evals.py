"""Evaluation of trained checkpoints as Ray shards (`train-all --ray [ADDRESS]`): one shard per folder.

The driver reads each checkpoint folder's files and hands them to the shard through Ray's object store, so
a node needs no shared disk; the shard writes them into a node-local folder, runs the same held-out suite as
`python -m backend evaluate` (backend.training.eval_suite.run, RecordWriter JSONL on its node) and returns
its records, stamped with node, GPU and shards sharing the device. The driver writes eval_<tag>.jsonl as the
process-per-model path does. A shard still running at the timeout is cancelled (its records, written when
its suite ends, are lost as a killed process's are); one whose worker dies is run again up to the retries.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from backend.scale import cluster as C
from store.records import dumps


def eval_shard(spec: dict, files: dict[str, bytes], control) -> dict:
    import ray  # in a Ray worker, ray is there

    from backend.training import eval_suite

    shard, run_id = spec["shard"], spec["run_id"]
    with C.shard_env(spec["env"]):
        where = C.whereabouts(ray)
        C.wait_for(control.start.remote(shard, where))
        out = C.shard_file(run_id, shard)
        folder = out.with_suffix("") / spec["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        sharing = C.wait_for(control.poll.remote(shard))["sharing"]
        eval_suite.run(argparse.Namespace(folders=[str(folder)], out=str(out), device=spec["device"],
                                          quick=spec["quick"], tasks=spec.get("tasks", ""),
                                          max_batch_tokens=spec.get("max_batch_tokens", 16384)))
        records = C.Tail(out).read()
        for rec in records:
            if rec["type"] == "measurement":
                C.stamp(rec["data"], where, sharing, shard)
            elif rec["type"] == "run":
                rec["config"]["folder"] = spec["folder"]  # the driver's path, not the node-local copy
        out.unlink(missing_ok=True)
        shutil.rmtree(folder.parent, ignore_errors=True)
        return {"shard": shard, "records": records, "where": where}


def run_evals_on_ray(folders: list[Path], out: Path, tag: str, timeout_s: float, quick: bool, device: str,
                     address: str | None = None, max_retries: int = C.DEFAULT_RETRIES, tasks: str = ""
                     ) -> dict[str, str]:
    """Evaluate every folder as a shard; writes out/eval_<tag>.jsonl and out/eval_log.txt. Returns the
    error sentence of each folder whose shard failed."""
    with C.session(address) as ray:
        opts, shard_device = C.shard_options(ray, None if device in (None, "auto") else device, max_retries)
        control = C.new_control(ray)
        task = C.shard_task(ray, eval_shard, opts)
        env, run_id = C.forwarded_env(), C.record_id("eval", tag, time.time())
        refs = {}
        for f in map(Path, folders):
            files = {str(p.relative_to(f)): p.read_bytes() for p in sorted(f.rglob("*")) if p.is_file()}
            spec = {"shard": f.name, "name": f.name, "folder": str(f), "run_id": run_id, "env": env,
                    "device": shard_device, "quick": quick, "tasks": tasks}
            refs[task.remote(spec, ray.put(files), control)] = f.name
        deadline = time.monotonic() + timeout_s
        results, errors, _ = C.drive(ray, refs, control, on_records=lambda recs: None,
                                     should_stop=lambda: time.monotonic() > deadline, grace_s=0.0,
                                     max_retries=max_retries, then="evaluate that checkpoint again")
    with open(out / f"eval_{tag}.jsonl", "w") as fh, open(out / "eval_log.txt", "w") as lh:
        for f in map(Path, folders):
            got = results.get(f.name)
            if got:
                fh.write("".join(dumps(r) + "\n" for r in got["records"]))
            w = (got or {}).get("where") or {}
            said = (f"{len(got['records'])} records from node {w.get('node_ip')} {w.get('node_id', '')[:8]}" if got
                    else f"failed: {errors.get(f.name)}")
            lh.write(f"==== {f.name}: {said}\n")
            print(f"eval {f.name}: " + ("ok" if got else f"failed ({errors.get(f.name)})"), flush=True)
    return {k: v for k, v in errors.items()}
