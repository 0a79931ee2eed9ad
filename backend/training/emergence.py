"""Probes run inside training, at fixed fractions of the run, so each skill's emergence point is measured.

Issue 14 asks when (in tokens) each family learns to use its context. Saving a checkpoint at every probe point
and evaluating it later would multiply the files a GPU call must return (8 x 16 MiB), so the training loop
calls `run_probes` on the live model instead (no_grad, the model's own training path, which `paths.py` has
verified against transformers'). Every probe is the held-out (split "eval") form of an experiment's task, in the
very prompt format the experiments use, scored without generation:

    fewshot-new-k0 / -k8   few-shot with labels never seen as labels in training, one random mapping per
                           episode (backend.toyworld.fewshot_episodes "new-labels"); the higher-likelihood of
                           the episode's two labels; chance 0.5
    mqar-8 / -32 / -64     associative recall (backend.toyworld.recall_aligned): teacher-forced greedy exact
                           match of " VVV\\n"; a model that returns some listed value scores 1/pairs by chance
    passkey-2k-4keys       pass key among 3 distractor needles at ~2,048 tokens (passkey_probe); exact match
    multi-qa-4             open-book QA with 4 passages, the gold one at a uniform position (the RAG
                           experiment's template and separator); exact match

`run_probes(model, probes, device, pad_id)` -> [{"task", "value", "correct", "n", "chance"}]. Probe sets are
built once per run (`build_probes(tok, n, seed)`, deterministic) so every model and every step sees the same
items. Items are [T] token id lists; batches are right-padded [B, T] (causal models: padding after the last
real token changes nothing before it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from backend.toyworld import (
    ANSWER_END,
    TEMPLATES,
    fewshot_episodes,
    fewshot_prompt,
    passkey_probe,
    qa_pairs,
    recall_aligned,
)
from backend.toyworld.mixture import PASSAGE_SEPARATOR  # = backend.rag.CONTEXT_SEPARATOR (tested)


@dataclass
class Probe:
    """One probe set. kind "choice": answer = index into `choices` (token ids scored at the prompt's last
    position); kind "exact": answer = token ids that greedy decoding must reproduce after the prompt."""

    task: str
    kind: str
    chance: float
    prompts: list[list[int]] = field(default_factory=list)
    answers: list = field(default_factory=list)
    choices: list[list[int]] = field(default_factory=list)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _bos(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=True)["input_ids"]


def _multi_passage(n: int, passages: int, seed: int) -> list[dict]:
    """Open-book QA rows with `passages` articles in the context, the gold one at a uniform position."""
    rows = qa_pairs(n * passages, seed=seed, open_book=True)
    rng = random.Random(f"emergence:multi-qa:{passages}:{seed}")
    out = []
    for i in range(n):
        group = rows[i * passages:(i + 1) * passages]
        gold, others = group[0], [r["context"] for r in group[1:]]
        pos = rng.randrange(passages)
        ctx = others[:pos] + [gold["context"]] + others[pos:]
        out.append({"context": PASSAGE_SEPARATOR.join(" ".join(c.split()) for c in ctx),
                    "question": gold["question"], "answer": gold["answer"], "position": pos})
    return out


def build_probes(tok, n: int = 64, seed: int = 0, passkey_tokens: int = 2048) -> list[Probe]:
    """The probe sets (n items each), deterministic for (n, seed)."""
    if n < 1:
        raise ValueError(f"A probe needs at least one item, got n={n}.")
    probes = []
    episodes = fewshot_episodes("new-labels", n, 8, seed=seed)
    for k in (0, 8):
        p = Probe(f"fewshot-new-k{k}", "choice", 0.5)
        for ep in episodes:
            labels = ep["choices"]
            p.prompts.append(_bos(tok, fewshot_prompt(ep["examples"][:k], ep["query"])))
            p.choices.append([_ids(tok, " " + lab)[0] for lab in labels])
            p.answers.append(labels.index(ep["query"]["label"]))
        probes.append(p)
    for pairs in (8, 32, 64):
        p = Probe(f"mqar-{pairs}", "exact", 1.0 / pairs)
        for r in recall_aligned(n, pairs, seed=seed):
            p.prompts.append(_bos(tok, TEMPLATES["recall"].format(**r)))
            p.answers.append(_ids(tok, f" {r['answer']}{ANSWER_END}"))
        probes.append(p)
    length = f"{passkey_tokens // 1024}k" if passkey_tokens % 1024 == 0 else str(passkey_tokens)
    p = Probe(f"passkey-{length}-4keys", "exact", 0.25)
    count = lambda s: len(_ids(tok, s))  # noqa: E731 - the model's own token count, as the experiments use
    for r in passkey_probe(max(1, n // 2), passkey_tokens, random.Random(seed).random(), keys=4, seed=seed,
                           count_tokens=count):
        p.prompts.append(_bos(tok, TEMPLATES["passkey"].format(**r)))
        p.answers.append(_ids(tok, f" {r['answer']}{ANSWER_END}"))
    probes.append(p)
    p = Probe("multi-qa-4", "exact", 0.25)
    for r in _multi_passage(n, 4, seed):
        p.prompts.append(_bos(tok, TEMPLATES["rag"].format(context=r["context"], question=r["question"])))
        p.answers.append(_ids(tok, f" {r['answer']}{ANSWER_END}"))
    probes.append(p)
    return probes


def _batches(items: list[list[int]], max_tokens: int):
    """Indices of `items` in batches of at most max_tokens padded tokens, longest first."""
    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    batch: list[int] = []
    for i in order:
        width = len(items[batch[0]]) if batch else len(items[i])
        if batch and (len(batch) + 1) * width > max_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.no_grad()
def _logits(model, seqs: list[list[int]], device, pad_id: int) -> torch.Tensor:
    """Right-padded forward: [B, T] ids -> [B, T, V] float logits."""
    width = max(len(s) for s in seqs)
    x = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = torch.tensor(s)
    x = x.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(input_ids=x, use_cache=False).logits.float()


def score(model, probe: Probe, device, pad_id: int = 1, max_tokens: int = 32_768) -> int:
    """Number of items of `probe` the model gets right."""
    correct = 0
    full = probe.prompts if probe.kind == "choice" else [p + a for p, a in zip(probe.prompts, probe.answers,
                                                                                 strict=True)]
    for idx in _batches(full, max_tokens):
        logits = _logits(model, [full[i] for i in idx], device, pad_id)
        for row, i in enumerate(idx):
            n_prompt = len(probe.prompts[i])
            if probe.kind == "choice":
                scores = logits[row, n_prompt - 1, probe.choices[i]]
                correct += int(int(scores.argmax()) == probe.answers[i])
            else:
                ans = torch.tensor(probe.answers[i], device=logits.device)
                pred = logits[row, n_prompt - 1:n_prompt - 1 + len(ans)].argmax(-1)
                correct += int(bool((pred == ans).all()))
    return correct


def run_probes(model, probes: list[Probe], device, pad_id: int = 1) -> list[dict]:
    """Score every probe set; the model's train/eval mode is left as it was."""
    rows = []
    for p in probes:
        c = score(model, p, device, pad_id)
        n = len(p.prompts)
        rows.append({"task": p.task, "value": round(c / n, 4), "correct": c, "n": n, "chance": round(p.chance, 4)})
    return rows


def probe_steps(total: int, fractions: list[float]) -> list[int]:
    """Steps (1..total) at which to probe: each fraction of the run, rounded, deduplicated, sorted."""
    return sorted({min(total, max(1, round(f * total))) for f in fractions if f > 0})
