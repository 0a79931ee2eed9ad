"""Where a model misses open-book QA: miss rate per attribute asked, and what the wrong answers were.

Runs the eval suite's open-book questions (same seed and n, so the same instances as `eval_suite`'s
`qa_open`) with greedy decoding up to the first newline, and classifies each miss:
    in_passage   the wrong answer is another span of the passage (copied the wrong fact)
    near_copy    same length as the reference and differs in at most two characters (e.g. one digit of
                 a population)
    other        anything else (e.g. the most common colour, seen often in training)
One record per model (store.RecordWriter JSONL with --jsonl); the last stdout line is a JSON summary.

    python -m backend qa-errors assets/models/toy-mamba assets/models/toy-transformer --device cpu
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from backend.generation.interface import GenSettings
from backend.toyworld import TEMPLATES, qa_pairs


def classify(got: str, ref: str, context: str) -> str:
    if got == ref:
        return "correct"
    if len(got) == len(ref) and sum(a != b for a, b in zip(got, ref, strict=True)) <= 2:
        return "near_copy"
    if got and got in context:
        return "in_passage"
    return "other"


def analyse(gen, n: int = 200, seed: int = 0) -> dict:
    """gen: a backend Generator (prefill once, then cached decode steps)."""
    rows = qa_pairs(n, seed, open_book=True)
    prompts = [TEMPLATES["qa_open"].format(context=r["context"], question=r["question"]) for r in rows]
    settings = GenSettings(max_new_tokens=12)  # answers are 1-7 tokens; the text is cut at the newline
    outs = [gen.generate(p, settings).text for p in prompts]
    per_key, misses, kinds, wrong = Counter(), Counter(), Counter(), Counter()
    for r, o in zip(rows, outs, strict=True):
        got = o.split("\n")[0].strip()
        kind = classify(got, r["answer"], r["context"])
        per_key[r["key"]] += 1
        if kind != "correct":
            misses[r["key"]] += 1
            kinds[kind] += 1
            wrong[got] += 1
    return {"n": n, "seed": seed, "correct": n - sum(misses.values()),
            "miss_rate_by_key": {k: round(misses[k] / per_key[k], 3) for k in sorted(per_key)},
            "n_by_key": dict(sorted(per_key.items())), "misses_by_kind": dict(kinds),
            "commonest_wrong_answers": wrong.most_common(5)}


def _family(folder) -> str:
    model_type = json.loads((Path(folder) / "config.json").read_text())["model_type"]
    return {"mamba": "mamba", "mamba2": "mamba2", "bamba": "hybrid"}.get(model_type, "transformer")


def run(a: argparse.Namespace) -> int:
    from backend.models.loading import load_generator
    from backend.models.registry import ModelSpec

    recs = []
    for folder in a.folders:
        spec = ModelSpec(Path(folder).name, _family(folder), source="local", location=str(folder))
        gen = load_generator(spec, device=a.device)
        rec = {"model": spec.name, **analyse(gen, a.n, a.seed), "device": gen.info.device, "dtype": gen.info.dtype,
               "path": gen.info.path,
               "metric": "qa_open_exact_match", "task": "qa_open_errors"}
        rec["value"] = rec["correct"] / rec["n"]
        recs.append(rec)
        print(json.dumps(rec), flush=True)
    if a.jsonl:
        from backend.runinfo import write_jsonl_run

        write_jsonl_run(a.jsonl, "toyworld_qa_errors", vars(a), recs, {r["model"]: r["value"] for r in recs},
                        name="open-book QA misses")
    print(json.dumps({r["model"]: r["miss_rate_by_key"] for r in recs}))
    return 0
