"""docs/results.md's section on issue 14 (retraining so context use can emerge), from results/train14_*.jsonl.

    HEAD                      the section's prose (what was trained, how to read the tables; no numbers)
    probe_table(path) -> str  per run of a train14 file: each model's emergence probes at every probe point

A probe cell lists the accuracy at each probe point of the run (tokens seen in the header), oldest first; the
last value is in bold when its 95% Wilson interval lies above the probe's chance level. The experiments on the
retrained checkpoints (results/exp14_*.jsonl) are rendered by results_doc with the other experiments' tables.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from backend.experiments.metrics import wilson_interval
from store import open_results

HEAD = """## Retraining so context use can emerge (issue 14)

Five families per size (`backend/training/trio.py`): the trio, `toy-hybrid` (Hugging Face `BambaForCausalLM`:
Mamba-2 layers with two attention layers, served by this repository's kernels) and `toy-transformer-deep` (a
Llama as deep as the SSMs, narrower, so a gap cannot be a depth artefact), all within 10% of each other's
parameters. They train on the *context* mixture (`backend/toyworld/mixture.py`: MQAR blocks of 8-64 pairs,
bursty few-shot episodes over 232 single-token labels at Zipfian frequencies with one random mapping per episode
and 20% of the labels held out, multi-passage QA with the gold passage at a uniform position, long documents),
the same token stream for every model, one process per model at once on one GPU, with a short-to-long
curriculum: in the last 20% of the steps, long windows of 8,192 tokens of long documents (every step in the
`_longall` file; every second step in the others, the rest staying on the mixture). Inside training, at 1/8,
1/4, 1/2, 3/4 and the end of the run, each model is scored on held-out probes in the experiments' own prompt
formats (`backend/training/emergence.py`): few-shot with never-trained labels and a random mapping per episode
(k = 0 and 8, chance 0.5), MQAR at 8, 32 and 64 pairs (exact match; a listed value at random would score
1/pairs), a pass key among 4 needles at about 2,048 tokens, and QA over 4 passages with the gold one anywhere.
Seeds change the initialisation and the batch order, not the data. Retrain with
`OUT=<folder> SEED=<s> STEPS=2099 bash scripts/gpu_run.sh retrain14` (GPU, alone in its call: it returns eight
files, the five checkpoints as archives among them). Of these checkpoints only `toy-hybrid` is bundled (seed 0,
retrained alone: the `_bundle` file); the others' records are committed, their weights are not. The size ladder
(`_medium_` files: ~29M parameters, width 512; `_large_`: ~110M, width 1,024; the same depths) trains the same
recipe at the same 2,099 steps x 12 x 1,024 tokens, two models per call (`OUT=<folder> PRESET=medium
MODELS=toy-hybrid,toy-transformer bash scripts/gpu_run.sh ladder14`; its checkpoints stay on the GPU machine),
with the same probes inside training."""


def _lines(path: Path) -> list[dict]:
    with open_results(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _long_phase(cfg: dict) -> str:
    if not cfg.get("long_seq_len"):
        return "no long phase"
    every = cfg.get("long_every", 1)  # absent: the run predates the option, when every step of the phase was long
    which = "every step" if every == 1 else f"every {every}nd step" if every == 2 else f"every {every}th step"
    return (f"long phase: the last {cfg.get('long_frac', 0):.0%} of the steps, {which} on "
            f"{cfg['long_seq_len']:,}-token windows")


def probe_table(path: Path) -> str:
    """Per run: a header line and one row per model with each probe's accuracy at every probe point."""
    recs = _lines(path)
    out = []
    for run in (r for r in recs if r.get("type") == "run" and r.get("kind") == "train"):
        rows = [r["data"] for r in recs if r.get("type") == "measurement" and r.get("run_id") == run["run_id"]]
        probes = [d for d in rows if str(d.get("metric", "")).startswith("probe:")]
        if not probes:
            continue
        cfg, meta = run.get("config") or {}, run.get("meta") or {}
        tasks = list(dict.fromkeys(d["task"] for d in probes))
        steps = sorted({d["step"] for d in probes})
        tokens = {d["step"]: d["tokens"] for d in probes}
        cells: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for d in sorted(probes, key=lambda d: d["step"]):
            cells[d["model"]][d["task"]].append(d)
        seed = next((d.get("seed") for d in rows if d.get("seed") is not None), cfg.get("seed"))
        out += [f"Emergence probes of **`{path.name}`** (run `{run.get('name')}`, seed {seed}, "
                f"{meta.get('device_name')}, commit {((meta.get('git_sha') or '')[:7]) or 'not recorded'}; "
                f"preset {cfg.get('preset') or 'small'}; {_long_phase(cfg)}), n = {max(d['n'] for d in probes)} items per probe (pass key: "
                f"{min(d['n'] for d in probes)}), at " + ", ".join(f"{tokens[s] / 1e6:.1f}M" for s in steps) +
                " tokens:", "",
                "| model | " + " | ".join(f"{t} (chance {probes[[p['task'] for p in probes].index(t)]['chance']:.2f})"
                                          for t in tasks) + " |",
                "|---|" + "---|" * len(tasks)]
        for model, by_task in cells.items():
            row = []
            for t in tasks:
                seq = by_task.get(t, [])
                if not seq:
                    row.append("")
                    continue
                last = seq[-1]
                lo, _ = wilson_interval(last["correct"], last["n"])
                text = f"{last['value']:.2f}"
                row.append(" → ".join(f"{d['value']:.2f}" for d in seq[:-1]) + (" → " if len(seq) > 1 else "") +
                           (f"**{text}**" if lo > last["chance"] else text))
            out.append(f"| {model} | " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)
