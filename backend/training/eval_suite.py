"""The issue-3 evaluation of a model on the toy world's held-out split, through the Generator interface.

Tasks (each record carries n, correct, value and a 95% Wilson interval; perplexity a bootstrap interval):
  qa_open      exact match, passage (<= 256 tokens) in the prompt          TEMPLATES["qa_open"]
  qa_closed    exact match, facts seen in training prose only              TEMPLATES["qa_closed"]
  fewshot      accuracy per task and k in (0, 1, 4, 8): the label with the highest log-likelihood
  arithmetic   accuracy per number of steps, "cot" (generated solution, the number after the first
               "The answer is") and "direct" (greedy continuation of "The answer is" equals " N.")
  passkey      retrieval at 512, 1024, 2048, 4096 tokens, depths spread evenly over 0..1
  recall       associative recall with 8 and 32 key-value pairs
  perplexity   per-token perplexity on held-out documents (the models share one tokenizer)
Exact match ("em") means greedy decoding reproduces the answer followed by a newline: the extraction rule
is "the generated text up to the first newline, stripped", computed from `loglikelihood`'s is_greedy.

    python -m backend evaluate assets/models/toy-mamba ... --out results/x.jsonl [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass, field

from backend.device import resolve_device
from backend.generation.interface import GenSettings
from backend.runinfo import run_meta
from backend.toyworld import (
    ANSWER_END,
    FEWSHOT_TASKS,
    TEMPLATES,
    arithmetic_problems,
    fewshot_pool,
    fewshot_prompt,
    heldout_documents,
    passkey_documents,
    qa_pairs,
    recall_segments,
)
from backend.training.batched import load_batched
from store import RecordWriter

ANSWER_RE = re.compile(r"The answer is (-?\d+)")


@dataclass
class EvalConfig:
    seed: int = 0
    n_qa: int = 200
    n_fewshot: int = 100  # queries per task and k
    ks: list[int] = field(default_factory=lambda: [0, 1, 4, 8])
    steps: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    n_arith: int = 100  # problems per number of steps
    passkey_lengths: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096])
    n_passkey: int = 20  # documents per length
    recall_pairs: list[int] = field(default_factory=lambda: [8, 32])
    n_recall: int = 100
    n_docs: int = 100
    cot_max_new_tokens: int = 100
    tasks: list[str] = field(default_factory=lambda: ["qa_open", "qa_closed", "perplexity", "fewshot", "passkey",
                                                      "recall", "arithmetic"])  # cheapest first


QUICK = dict(n_qa=8, n_fewshot=4, ks=[0, 2], steps=[1, 2], n_arith=3, passkey_lengths=[128, 256], n_passkey=2,
             recall_pairs=[4], n_recall=4, n_docs=3, cot_max_new_tokens=40)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _acc(task: str, metric: str, hits: list[bool], **extra) -> dict:
    k, n = sum(hits), len(hits)
    lo, hi = wilson(k, n)
    return {"task": task, "metric": metric, "n": n, "correct": k, "value": k / n if n else None,
            "ci_low": lo, "ci_high": hi, **extra}


def _ll(gen, reqs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
    return gen.loglikelihood(reqs) if reqs else []


def _em(gen, prompts: list[str], answers: list[str]) -> list[bool]:
    return [g for _, g in _ll(gen, [(p, f" {a}{ANSWER_END}") for p, a in zip(prompts, answers, strict=True)])]


def _generate(gen, prompts: list[str], max_new: int, stop: str) -> list[str]:
    if hasattr(gen, "generate_batch"):
        return gen.generate_batch(prompts, max_new, stop=stop)

    return [gen.generate(p, GenSettings(max_new_tokens=max_new)).text for p in prompts]


def eval_qa(gen, cfg: EvalConfig, open_book: bool) -> list[dict]:
    rows = qa_pairs(cfg.n_qa, cfg.seed, open_book=open_book)
    key = "qa_open" if open_book else "qa_closed"
    prompts = [TEMPLATES[key].format(context=r["context"], question=r["question"]) for r in rows]
    extra = {}
    if open_book:
        extra["max_context_tokens"] = max(gen.count_tokens(r["context"]) for r in rows)
    return [_acc(key, "exact_match", _em(gen, prompts, [r["answer"] for r in rows]), **extra)]


def eval_fewshot(gen, cfg: EvalConfig) -> list[dict]:
    out = []
    for task, spec in FEWSHOT_TASKS.items():
        labels = spec["labels"]
        pool = fewshot_pool(task, cfg.n_fewshot + 64, cfg.seed)
        queries, support = pool[:cfg.n_fewshot], pool[cfg.n_fewshot:]
        for k in cfg.ks:
            rng = random.Random(f"fewshot-episodes:{task}:{k}:{cfg.seed}")
            prompts = [fewshot_prompt(rng.sample(support, k), q) for q in queries]
            scores = _ll(gen, [(p, f" {lab}\n") for p in prompts for lab in labels])
            hits = []
            for i, q in enumerate(queries):
                s = [scores[i * len(labels) + j][0] for j in range(len(labels))]
                hits.append(labels[max(range(len(labels)), key=s.__getitem__)] == q["label"])
            out.append(_acc("fewshot", "accuracy", hits, fewshot_task=task, k=k, chance=1 / len(labels)))
    return out


def eval_arithmetic(gen, cfg: EvalConfig) -> list[dict]:
    out = []
    for steps in cfg.steps:
        probs = arithmetic_problems(cfg.n_arith, steps, cfg.seed)
        direct = [g for _, g in _ll(gen, [(TEMPLATES["direct"].format(question=p["question"]), f" {p['answer']}.")
                                          for p in probs])]
        texts = _generate(gen, [TEMPLATES["cot"].format(question=p["question"]) for p in probs],
                          cfg.cot_max_new_tokens, stop=r"The answer is -?\d+\.")
        cot = []
        for t, p in zip(texts, probs, strict=True):
            m = ANSWER_RE.search(t)
            cot.append(bool(m) and int(m.group(1)) == p["answer"])
        out.append(_acc("arithmetic", "accuracy", direct, mode="direct", steps=steps))
        out.append(_acc("arithmetic", "accuracy", cot, mode="cot", steps=steps))
    return out


def eval_passkey(gen, cfg: EvalConfig) -> list[dict]:
    out = []
    n = cfg.n_passkey
    for length in cfg.passkey_lengths:
        docs = []
        for i in range(n):
            depth = i / (n - 1) if n > 1 else 0.5
            docs += passkey_documents(1, length, round(depth, 3), cfg.seed + i, count_tokens=gen.count_tokens)
        prompts = [TEMPLATES["passkey"].format(**d) for d in docs]
        out.append(_acc("passkey", "exact_match", _em(gen, prompts, [d["answer"] for d in docs]),
                        context_tokens=length, mean_length=sum(d["length"] for d in docs) / len(docs)))
    return out


def eval_recall(gen, cfg: EvalConfig) -> list[dict]:
    out = []
    for n_pairs in cfg.recall_pairs:
        rows = recall_segments(cfg.n_recall, n_pairs, cfg.seed)
        prompts = [TEMPLATES["recall"].format(**r) for r in rows]
        out.append(_acc("recall", "exact_match", _em(gen, prompts, [r["answer"] for r in rows]), n_pairs=n_pairs))
    return out


def eval_perplexity(gen, cfg: EvalConfig) -> list[dict]:
    docs = heldout_documents(cfg.n_docs, cfg.seed)
    scores = _ll(gen, [("", d["text"]) for d in docs])
    lps = [s for s, _ in scores]
    toks = [gen.count_tokens(d["text"]) for d in docs]
    ppl = math.exp(-sum(lps) / sum(toks))
    rng = random.Random(cfg.seed)
    boot = []
    for _ in range(1000):
        idx = [rng.randrange(len(docs)) for _ in docs]
        boot.append(math.exp(-sum(lps[i] for i in idx) / sum(toks[i] for i in idx)))
    boot.sort()
    return [{"task": "perplexity", "metric": "perplexity", "n": len(docs), "tokens": sum(toks), "value": ppl,
             "ci_low": boot[25], "ci_high": boot[974], "ci_method": "bootstrap over documents"}]


TASKS = {"qa_open": lambda g, c: eval_qa(g, c, True), "qa_closed": lambda g, c: eval_qa(g, c, False),
         "fewshot": eval_fewshot, "arithmetic": eval_arithmetic, "passkey": eval_passkey,
         "recall": eval_recall, "perplexity": eval_perplexity}


def run_suite(gen, cfg: EvalConfig | None = None, log=None) -> list[dict]:
    """Run the configured tasks against `gen`; one record per (task, setting), tagged with the model."""
    cfg = cfg or EvalConfig()
    records = []
    for name in cfg.tasks:
        if name not in TASKS:
            raise ValueError(f"unknown evaluation task {name!r}; choose from {sorted(TASKS)}")
        t0 = time.perf_counter()
        for r in TASKS[name](gen, cfg):
            r.update(model=gen.info.name, family=gen.info.family, seed=cfg.seed, seconds=None)
            records.append(r)
        records[-1]["seconds"] = round(time.perf_counter() - t0, 2)
        if log:
            log(f"{gen.info.name} {name}: {time.perf_counter() - t0:.1f}s")
    return records


def run(a: argparse.Namespace) -> int:
    import torch

    device = str(resolve_device(a.device))
    cfg = EvalConfig(**(QUICK if a.quick else {}))
    if a.tasks:
        cfg.tasks = a.tasks.split(",")
    w = RecordWriter(a.out)
    for folder in a.folders:
        gen = load_batched(folder, device=device, max_batch_tokens=a.max_batch_tokens)
        dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        run_id = w.start_run("toyworld_eval", {**asdict(cfg), "folder": str(folder)},
                             {**run_meta(device), "device": dev_name, "path": gen.info.path},
                             name=f"toyworld eval {gen.info.name}")
        recs = run_suite(gen, cfg, log=lambda s: print(s, flush=True))
        for r in recs:
            r.update(device=dev_name, dtype="bfloat16-autocast" if device == "cuda" else gen.info.dtype,
                     path=gen.info.path)
        w.add_measurements(run_id, recs)
        w.finish_run(run_id, "completed", {"records": len(recs)})
        for r in recs:
            print(json.dumps(r), flush=True)
    return 0
