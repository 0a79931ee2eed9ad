"""A batched, cache-free Generator over a Hugging Face causal LM, for running the evaluation suite fast.

Not the app's generator (that is backend.generation.decode.HFGenerator, with streaming, steppers and timing): this
one exists so the training call on a GPU can evaluate thousands of prompts in seconds. Every forward pass
is over right-padded full sequences (no cache): for causal models, SSMs and transformers alike, padding after
a sequence cannot change the logits of its earlier positions, so results equal one-at-a-time decoding.

Shapes: ids [B, T] (right-padded with pad_id), logits [B, T, V]; row b's prompt occupies ids[b, :len_b].
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator

os.environ.setdefault("USE_HUB_KERNELS", "0")  # never try to download kernels (before transformers loads)


from backend.generation.interface import (
    GenerationResult,
    Generator,
    GenMetrics,
    GenSettings,
    ModelInfo,
    TokenEvent,
)
from backend.models.weights import ensure_weights


class BatchedHFGenerator(Generator):
    def __init__(self, model, tokenizer, name: str, family: str, max_batch_tokens: int = 32768):
        import torch

        super().__init__()
        self.model, self.tok = model.eval(), tokenizer
        self.device = next(model.parameters()).device
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos = tokenizer.eos_token_id
        self.max_batch_tokens = max_batch_tokens
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        self.info = ModelInfo(name, family, sum(p.numel() for p in model.parameters()), dtype, str(self.device),
                              None, path="batched-no-cache")
        self._torch = torch

    # ---- tokens
    def encode(self, text: str) -> list[int]:
        return list(self.tok(text)["input_ids"])  # starts with <|endoftext|> (BOS), as in training

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        cur: list[int] = []
        for i in order:
            if cur and (len(cur) + 1) * lengths[cur[0]] > self.max_batch_tokens:
                yield cur
                cur = []
            cur.append(i)
        if cur:
            yield cur

    def _logits(self, seqs: list[list[int]]):
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.model(input_ids=ids.to(self.device), use_cache=False).logits

    # ---- scoring
    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        torch = self._torch
        pairs = []
        for ctx, cont in requests:
            c = self.encode(ctx)
            k = list(self.tok(cont, add_special_tokens=False)["input_ids"])
            if not k:
                raise ValueError("A continuation to score is empty; every choice needs some text.")
            pairs.append((c + k, len(c)))
        out: list[tuple[float, bool] | None] = [None] * len(pairs)
        with torch.inference_mode():
            for chunk in self._batches([len(p[0]) for p in pairs]):
                logits = self._logits([pairs[i][0] for i in chunk])
                for r, i in enumerate(chunk):
                    whole, n_ctx = pairs[i]
                    lp = torch.log_softmax(logits[r, n_ctx - 1:len(whole) - 1].float(), dim=-1)
                    tgt = torch.tensor(whole[n_ctx:], device=lp.device)
                    out[i] = (float(lp.gather(-1, tgt[:, None]).sum()), bool((lp.argmax(-1) == tgt).all()))
        return out  # type: ignore[return-value]

    # ---- greedy generation
    def generate_batch(self, prompts: list[str], max_new_tokens: int, stop: str | None = None) -> list[str]:
        """Greedy continuations of many prompts; each stops at EOS or once `stop` (a regex) matches."""
        torch = self._torch
        seqs = [self.encode(p) for p in prompts]
        n0 = [len(s) for s in seqs]
        done = [False] * len(seqs)
        pat = re.compile(stop) if stop else None
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                live = [i for i in range(len(seqs)) if not done[i]]
                if not live:
                    break
                for chunk in self._batches([len(seqs[i]) for i in live]):
                    rows = [live[j] for j in chunk]
                    logits = self._logits([seqs[i] for i in rows])
                    last = torch.tensor([len(seqs[i]) - 1 for i in rows], device=logits.device)
                    nxt = logits[torch.arange(len(rows), device=logits.device), last].argmax(-1).tolist()
                    for i, t in zip(rows, nxt, strict=True):
                        if t == self.eos:
                            done[i] = True
                            continue
                        seqs[i].append(t)
                        if pat and pat.search(self.tok.decode(seqs[i][n0[i]:])):
                            done[i] = True
        return [self.tok.decode(s[n:], skip_special_tokens=True) for s, n in zip(seqs, n0, strict=True)]

    def stream(self, prompt: str, settings: GenSettings,
               should_stop: Callable[[], bool] | None = None) -> Iterator[TokenEvent | GenerationResult]:
        """Greedy only (settings.do_sample is ignored); no cache, one full forward per token."""
        torch = self._torch
        t0 = time.perf_counter()
        seq = self.encode(prompt)
        n0, finish, events = len(seq), "length", []
        with torch.inference_mode():
            for i in range(settings.max_new_tokens):
                if should_stop and should_stop():
                    finish = "cancelled"
                    break
                t = int(self._logits([seq])[0, -1].argmax())
                if t == self.eos and settings.stop_at_eos:
                    finish = "eos"
                    break
                seq.append(t)
                ev = TokenEvent(i, t, self.tok.decode([t]), time.perf_counter() - t0)
                events.append(ev)
                yield ev
        total = (time.perf_counter() - t0) * 1000
        m = GenMetrics(n0, len(seq) - n0, events[0].elapsed_s * 1000 if events else None, None, None, None, None,
                       total, None, "cpu_rss", None, "none", self.info.path, self.info.device, self.info.dtype)
        yield GenerationResult(self.info.name, self.info.family, prompt,
                               self.tok.decode(seq[n0:], skip_special_tokens=True), seq[n0:], finish, m, settings)


def load_batched(folder, name: str | None = None, device: str = "cpu", family: str | None = None,
                 max_batch_tokens: int = 32768) -> BatchedHFGenerator:
    """Load a checkpoint folder (config + safetensors + tokenizer) as a BatchedHFGenerator (fp32 weights)."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = ensure_weights(folder)  # a bundled folder's .xz weights, unpacked once (backend.models.weights)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).to(device)
    tok = PreTrainedTokenizerFast.from_pretrained(str(folder))
    fam = family or {"mamba": "mamba", "mamba2": "mamba2", "llama": "transformer", "bamba": "hybrid"}.get(
        model.config.model_type, model.config.model_type)
    return BatchedHFGenerator(model, tok, name or folder.name, fam, max_batch_tokens)
