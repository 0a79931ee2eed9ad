"""The explainer's demonstrations that need no torch: the selection mechanism in one channel, a selective-copying
input, and cache bytes against prompt length measured through the Generator interface.

    selective_memory(...)         Mamba paper Theorem 1 (Section 3.5.1: Δ as the gate of an RNN): a marked token
                                  among noise, read out at the end with an input-dependent Δ and with fixed (LTI) Δ
    selective_copy_text(seed)     a selective-copying input (Mamba paper Section 3.1: digits among dots) and the
                                  digits as character spans, for `backend.inside.core.inspect` on a loaded SSM
    cache_growth(gens, lengths)   recurrent state vs KV cache bytes as the prompt grows, as each loaded model's own
                                  decode loop reports them (GenMetrics.cache_bytes)
"""

from __future__ import annotations

import math
import random

from backend.generation.interface import GenSettings


def selective_memory(length: int = 64, seeds: int = 100, fixed_deltas=(0.05, 0.5),
                     write_delta: float = 8.0, skip_delta: float = 1e-4) -> list[dict]:
    """One channel, h_t = (1 - g_t) h_{t-1} + g_t u_t with g_t = 1 - exp(-Δ_t) (A = -1, zero-order hold: the
    gated form of Mamba paper Theorem 1). u is noise (standard normal) except one marked token with value
    v ~ U(1, 2) at distance d from the end. Selective: Δ_t = write_delta on the marked token, skip_delta on
    noise. LTI: one fixed Δ for every token. Rows {method, distance, error}: mean |h_L - v| over `seeds`."""
    rows = []
    methods = [("selective Δ (input-dependent)", None)] + [(f"fixed Δ = {d:g} (LTI)", d) for d in fixed_deltas]
    for distance in range(0, length, max(1, length // 16)):
        errors = {name: 0.0 for name, _ in methods}
        for s in range(seeds):
            rng = random.Random(s * 7919 + distance)
            u = [rng.gauss(0, 1) for _ in range(length)]
            pos = length - 1 - distance
            u[pos] = v = rng.uniform(1, 2)
            for name, fixed in methods:
                h = 0.0
                for t, x in enumerate(u):
                    d = fixed if fixed is not None else (write_delta if t == pos else skip_delta)
                    g = 1 - math.exp(-d)
                    h = (1 - g) * h + g * x
                errors[name] += abs(h - v) / seeds
        rows += [{"method": name, "distance": distance, "error": err} for name, err in errors.items()]
    return rows


def selective_copy_text(n_digits: int = 6, length: int = 60, seed: int = 0) -> tuple[str, list[tuple[str, int, int]]]:
    """"Copy the digits, ignore the dots: . . 7 . 3 ...\\nDigits:" and the digits' character spans."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(length), n_digits))
    head = "Copy the digits, ignore the dots:"
    text, spans = head, []
    for i in range(length):
        piece = str(rng.randint(0, 9)) if i in slots else "."
        if i in slots:
            spans.append(("digit", len(text) + 1, len(text) + 2))
        text += " " + piece
    return text + "\nDigits:", spans


def cache_growth(gens: dict, lengths: list[int], text: str) -> list[dict]:
    """For each model and target length: one greedy token after a prompt of about that many tokens (the start
    of `text`, repeated as needed); the cache bytes its decode loop reports, and their kind."""
    rows = []
    words = text.split()
    for name, gen in gens.items():
        for n in lengths:
            prompt = prompt_of(gen, words, n)
            r = gen.generate(prompt, GenSettings(max_new_tokens=1, stop_at_eos=False))
            m = r.metrics
            rows.append({"model": name, "family": gen.info.family, "prompt_tokens": m.prompt_tokens,
                         "cache_bytes": m.cache_bytes, "cache_kind": m.cache_kind, "path": m.path})
    return rows


def prompt_of(gen, words: list[str], n: int) -> str:
    """The longest prefix of `words` (repeated) with at most n tokens for `gen` (bisection on word count)."""
    reps = math.ceil(max(n, 1) * 2 / max(len(words), 1)) + 1
    pool = (words * reps)[: max(n, 1) * 2]
    lo, hi = 1, len(pool)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if gen.count_tokens(" ".join(pool[:mid])) <= n:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(pool[:lo])
