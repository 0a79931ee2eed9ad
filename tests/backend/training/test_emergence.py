"""The in-training probes (issue 14's emergence curves): deterministic item sets in the experiments' formats,
scored at the right positions, run at the right steps of a training run."""

from __future__ import annotations

import json

import pytest
import torch

from backend.rag import CONTEXT_SEPARATOR
from backend.toyworld.tokenizer import load_tokenizer
from backend.training import emergence as E
from backend.training.data import is_long_step, long_start, tokens_seen
from backend.training.loop import TrainConfig, train

TASKS = ["fewshot-new-k0", "fewshot-new-k8", "mqar-8", "mqar-32", "mqar-64", "passkey-1k-4keys", "multi-qa-4"]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def probes(tok):
    return E.build_probes(tok, n=8, seed=3, passkey_tokens=1024)


class _Oracle(torch.nn.Module):
    """Logits that put the *next* input token first (it reads ahead): every exact-match probe is right."""

    def __init__(self, vocab: int, ahead: bool = True):
        super().__init__()
        self.vocab, self.ahead = vocab, ahead

    def forward(self, input_ids, use_cache=False):
        nxt = torch.roll(input_ids, -1, dims=1) if self.ahead else torch.zeros_like(input_ids)
        logits = torch.nn.functional.one_hot(nxt, self.vocab).float()
        return type("Out", (), {"logits": logits})()


class _PrefersLowIds(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, use_cache=False):
        row = -torch.arange(self.vocab, dtype=torch.float32)
        return type("Out", (), {"logits": row.expand(*input_ids.shape, self.vocab)})()


def test_probe_sets_are_deterministic_and_complete(tok, probes):
    assert [p.task for p in probes] == TASKS
    again = E.build_probes(tok, n=8, seed=3, passkey_tokens=1024)
    assert [(p.prompts, p.answers, p.choices) for p in probes] == [(p.prompts, p.answers, p.choices) for p in again]
    other = E.build_probes(tok, n=8, seed=4, passkey_tokens=1024)
    assert probes[2].prompts != other[2].prompts  # the seed matters
    for p in probes:
        assert len(p.prompts) == len(p.answers) == (4 if p.task.startswith("passkey") else 8)
        assert 0 < p.chance <= 0.5
        assert all(a in (0, 1) for a in p.answers) if p.kind == "choice" else all(len(a) > 1 for a in p.answers)
    k0, k8 = probes[0], probes[1]
    assert k0.answers == k8.answers and k0.choices == k8.choices  # same episodes, only the shots differ
    assert all(len(c) == 2 and c[0] != c[1] for c in k0.choices)
    assert all(len(b) > len(a) for a, b in zip(k0.prompts, k8.prompts, strict=True))
    pk = probes[5]
    assert all(800 <= len(x) <= 1300 for x in pk.prompts), [len(x) for x in pk.prompts]
    with pytest.raises(ValueError, match="at least one item"):
        E.build_probes(tok, n=0)


def test_multi_passage_probe_uses_the_rag_separator_and_uniform_gold_positions():
    assert E.PASSAGE_SEPARATOR == CONTEXT_SEPARATOR
    rows = E._multi_passage(64, 4, seed=0)
    assert {r["position"] for r in rows} == {0, 1, 2, 3}
    for r in rows:
        parts = r["context"].split(CONTEXT_SEPARATOR)
        assert len(parts) == 4 and r["answer"] in parts[r["position"]]


def test_scores_read_the_answer_positions(tok, probes):
    vocab = len(tok)
    for p in probes:
        if p.kind == "exact":
            assert E.score(_Oracle(vocab), p, torch.device("cpu"), max_tokens=4096) == len(p.prompts)
            assert E.score(_Oracle(vocab, ahead=False), p, torch.device("cpu")) == 0
        else:  # the lower token id of the two labels wins: count where that is the answer
            want = sum(int(c.index(min(c)) == a) for c, a in zip(p.choices, p.answers, strict=True))
            assert E.score(_PrefersLowIds(vocab), p, torch.device("cpu"), max_tokens=600) == want
    rows = E.run_probes(_Oracle(vocab), probes[2:4], torch.device("cpu"))
    assert [(r["task"], r["value"], r["n"]) for r in rows] == [("mqar-8", 1.0, 8), ("mqar-32", 1.0, 8)]


def test_probe_steps_are_fractions_of_the_run():
    assert E.probe_steps(100, [0.25, 0.5, 1.0]) == [25, 50, 100]
    assert E.probe_steps(3, [0.01, 0.1, 1.0]) == [1, 3]


@pytest.mark.parametrize("every", [1, 2, 3])
def test_long_phase_steps_and_token_count(every):
    cfg = TrainConfig(seq_len=1024, batch_size=12, long_seq_len=8192, long_frac=0.2, long_every=every)
    total = 100
    long = [s for s in range(total) if is_long_step(s, total, cfg)]
    assert long == list(range(80, 100, every)) and long_start(total, cfg) == 80
    assert not any(is_long_step(s, None, cfg) for s in range(total))  # a timed run before its total is fixed
    for step in (0, 80, 81, 95, 100):
        n_long = sum(1 for s in long if s < step)
        assert tokens_seen(step, total, cfg) == (step - n_long) * 12 * 1024 + n_long * 1 * 8192


def test_curriculum_and_probes_in_a_tiny_run(tmp_path):
    """The context mixture, a long phase of 128-token windows over the last quarter, probes at half and end."""
    cfg = TrainConfig(models=["toy-hybrid", "toy-transformer-deep"], preset="tiny", steps=8, seq_len=64,
                      batch_size=4, n_tokens=30_000, workers=1, warmup_steps=2, log_every=2, device="cpu",
                      out_dir=str(tmp_path), results=str(tmp_path / "train.jsonl"), mixture="context",
                      long_seq_len=128, long_frac=0.25, long_every=2, probe_at="0.5,1", probe_n=4, probe_tokens=512)
    summaries = train(cfg, log=lambda s: None)
    for s in summaries:
        assert s["mixture"] == "context"
        assert s["long_phase"] == {"seq_len": 128, "batch_size": 2, "start_step": 6, "every": 2}
        assert s["tokens_seen"] == 7 * 4 * 64 + 1 * 2 * 128  # step 6 long, step 7 back on the mixture
        assert sorted({r["step"] for r in s["probes"]}) == [4, 8]
        assert {r["task"] for r in s["probes"]} == {t for t in TASKS if not t.startswith("passkey")} | {
            "passkey-512-4keys"}
        assert all(0.0 <= r["value"] <= 1.0 for r in s["probes"])
        assert "--mixture context --long-seq-len 128 --long-frac 0.25 --long-every 2 --probe-at 0.5,1" in s["command"]
    records = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    probe_rows = [r["data"] for r in records if r["type"] == "measurement" and r["data"]["metric"].startswith("probe:")]
    assert len(probe_rows) == 2 * 2 * len(TASKS) and {r["model"] for r in probe_rows} == set(cfg.models)
    with pytest.raises(ValueError, match="long-frac"):
        train(TrainConfig(**{**cfg.__dict__, "long_frac": 1.5}), log=lambda s: None)
    with pytest.raises(ValueError, match="long-every"):
        train(TrainConfig(**{**cfg.__dict__, "long_every": 0}), log=lambda s: None)
    with pytest.raises(ValueError, match="probe-at"):
        train(TrainConfig(**{**cfg.__dict__, "probe_at": "0,2"}), log=lambda s: None)
