"""The data a training run sees: the shared token stream, its shuffled windows, and the curriculum's long phase.

Every model of a run trains on one stream of toy-world documents (each starting with <|endoftext|>), generated
in shards that are concatenated in shard order, so the stream is a function of (data_seed, mixture, n_tokens).
With a curriculum (`long_seq_len`, `long_frac`, `long_every`) every long_every-th of the last long_frac of the
steps cuts windows of long_seq_len tokens from a second stream of long documents (backend/toyworld/mixture.py long_documents), with the batch
size scaled so every step still sees about batch_size * seq_len tokens.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from backend.toyworld import training_corpus
from backend.toyworld.mixture import long_documents
from backend.toyworld.tokenizer import load_tokenizer
from backend.training.config import TrainConfig


def _shard(args: tuple) -> np.ndarray:
    data_seed, index, n_tokens, mixture, long = args

    tok = load_tokenizer()
    if long:
        docs, total = [], 0
        for doc in long_documents(seed=f"long.{data_seed}.{index}"):
            if total >= n_tokens:
                break
            docs.append(doc)
            total += len(doc) // 4 + 1
    else:
        docs = list(training_corpus(n_tokens, seed=f"{data_seed}.{index}", mixture=mixture))
    out = []
    for i in range(0, len(docs), 1000):
        for ids in tok(docs[i:i + 1000], add_special_tokens=True)["input_ids"]:
            out.append(np.asarray(ids, dtype=np.uint16))
    return np.concatenate(out)


def token_stream(cfg: TrainConfig) -> np.ndarray:
    """The one token stream every model trains on: documents (each starting with <|endoftext|>) back to
    back, generated in shards that are concatenated in shard order (deterministic for data_seed)."""
    if cfg.stream_file:
        from backend.training.plan import load_or_make_stream

        return load_or_make_stream(cfg.stream_file, lambda: _make_stream(cfg))
    return _make_stream(cfg)


def long_tokens(cfg: TrainConfig) -> int:
    """Length of the long-document stream: the long phase's share of the tokens (of --steps when set, else of
    --n-tokens) plus 10%, and at least four windows. Like the main stream it is reused from the start if a
    longer (timed) run exhausts it."""
    seen = cfg.steps * cfg.batch_size * cfg.seq_len if cfg.steps else cfg.n_tokens
    return int(1.1 * seen * cfg.long_frac / max(1, cfg.long_every)) + 4 * (cfg.long_seq_len + 1)


def long_stream(cfg: TrainConfig) -> np.ndarray:
    """The stream of long documents the curriculum's last phase cuts its windows from."""
    if cfg.long_stream_file:
        from backend.training.plan import load_or_make_stream

        return load_or_make_stream(cfg.long_stream_file, lambda: _make_stream(cfg, long_tokens(cfg), long=True))
    return _make_stream(cfg, long_tokens(cfg), long=True)


def long_batch_size(cfg: TrainConfig) -> int:
    """Batch size of the long phase: the same tokens per step as the short phase (at least one window)."""
    return max(1, cfg.batch_size * cfg.seq_len // cfg.long_seq_len)


def _make_stream(cfg: TrainConfig, n_tokens: int | None = None, long: bool = False) -> np.ndarray:
    workers = cfg.workers or os.cpu_count() or 1
    n_tokens = n_tokens or cfg.n_tokens
    n_shards = max(1, min(64, n_tokens // 200_000))
    jobs = [(cfg.data_seed, i, n_tokens // n_shards, cfg.mixture, long) for i in range(n_shards)]
    if workers == 1 or n_shards == 1:
        parts = [_shard(j) for j in jobs]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, n_shards)) as pool:
            parts = pool.map(_shard, jobs)
    return np.concatenate(parts)


class Batches:
    """Non-overlapping windows of seq_len + 1 tokens in a fixed shuffled order; batch(step) -> (x, y), each
    [batch_size, seq_len]. `seq_len` / `batch_size` override the config's (the curriculum's long phase)."""
    def __init__(self, stream: np.ndarray, cfg: TrainConfig, seq_len: int | None = None,
                 batch_size: int | None = None):
        seq_len, self.bs = seq_len or cfg.seq_len, batch_size or cfg.batch_size
        self.n_seq = len(stream) // (seq_len + 1)
        if self.n_seq < self.bs:
            raise ValueError(f"The token stream ({len(stream)} tokens) is shorter than one batch of {self.bs} x "
                             f"{seq_len} tokens; raise --n-tokens.")
        self.windows = stream[: self.n_seq * (seq_len + 1)].reshape(self.n_seq, seq_len + 1)
        self.order = np.random.default_rng(cfg.seed).permutation(self.n_seq)

    def batch(self, step: int):
        idx = [self.order[(step * self.bs + i) % self.n_seq] for i in range(self.bs)]
        w = torch.from_numpy(self.windows[idx].astype(np.int64))
        return w[:, :-1], w[:, 1:]

    def epochs(self, steps: int) -> float:
        return steps * self.bs / self.n_seq


def long_start(total: int, cfg: TrainConfig) -> int:
    """First step of the curriculum's long phase (the last long_frac of the run)."""
    return int(total * (1 - cfg.long_frac))


def is_long_step(step: int, total: int | None, cfg: TrainConfig) -> bool:
    """Whether `step` trains on a long window: inside the long phase, every long_every-th step (the others keep
    training on the mixture, so what the short phase taught is not forgotten: with every step long, the
    transformer's MQAR-8 probe fell from 0.92 to 0.02 over the phase; H100, 2026-12-06)."""
    if not cfg.long_seq_len or total is None or step < long_start(total, cfg):
        return False
    return (step - long_start(total, cfg)) % max(1, cfg.long_every) == 0


def tokens_seen(step: int, total: int | None, cfg: TrainConfig) -> int:
    """Tokens trained on after `step` steps (every step sees batch_size * seq_len tokens, except that a long
    step's batch of long_batch_size windows may round that down)."""
    if not cfg.long_seq_len or total is None or step <= long_start(total, cfg):
        return step * cfg.batch_size * cfg.seq_len
    start, every = long_start(total, cfg), max(1, cfg.long_every)
    n_long = (step - start + every - 1) // every  # long steps among start .. step-1
    return (step - n_long) * cfg.batch_size * cfg.seq_len + n_long * long_batch_size(cfg) * cfg.long_seq_len
