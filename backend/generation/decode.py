"""HFGenerator: the one decode loop of ours that every real model (SSM or transformer) runs through.

    tokenize -> check length -> stepper.prefill(ids) -> pick token -> [stepper.step(token) -> pick]* ...

Same loop, same sampling and the same timing hooks for both families (design.md "Fair comparison"); Hugging
Face `generate()` is never used for our numbers. Timing (definitions in backend/generation/interface.py): the device
is synchronised before every clock read; `ttft` runs from the request start (before tokenisation) to the
first generated token id on the host; `prefill` from the prompt's submission to the first logits. Time
the consumer spends between tokens (a UI rendering a delta) is excluded from every model metric: the clock
is paused while a TokenEvent is out (`elapsed_s` on the events stays wall-clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch

from backend.generation.interface import (
    SSM_FAMILIES,
    GenerationError,
    GenerationResult,
    Generator,
    GenMetrics,
    GenSettings,
    ModelInfo,
    PromptTooLongError,
    TokenEvent,
)
from backend.generation.metrics import PeakMemory, percentile
from backend.generation.steppers import Stepper, make_stepper


class _Clock:
    """perf_counter minus time spent outside the generator (while a TokenEvent is being consumed)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.paused = 0.0

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.paused


class IncrementalDecoder:
    """Text delta of each new token, emitted at once (not at word boundaries). Holds back only while the
    tail is an incomplete UTF-8 sequence ("\ufffd"), the prefix/read-offset scheme of TGI and vLLM."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix:self.read])
        new_text = self._decode(self.ids[self.prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text):]
            self.prefix, self.read = self.read, len(self.ids)
            return delta
        return ""

    def text(self) -> str:
        return self._decode(self.ids)


def eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for src in (getattr(model, "generation_config", None), model.config, tokenizer):
        val = getattr(src, "eos_token_id", None) if src is not None else None
        if isinstance(val, int):
            ids.add(val)
        elif isinstance(val, list | tuple):
            ids.update(int(v) for v in val)
    return ids


class Sampler:
    """Greedy argmax, or temperature / top-k / top-p sampling (transformers' logits warpers) drawn with a
    seeded CPU torch.Generator, so a seed gives the same tokens on any device for the same logits."""

    def __init__(self, settings: GenSettings) -> None:
        self.greedy = not settings.do_sample
        if self.greedy:
            return
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        warpers = LogitsProcessorList()
        if settings.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k and settings.top_k > 0:
            warpers.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            warpers.append(TopPLogitsWarper(settings.top_p))
        self.warpers = warpers
        self.gen = torch.Generator(device="cpu").manual_seed(int(settings.seed))

    def __call__(self, logits: torch.Tensor) -> int:
        """logits [1, V] -> token id (host int; reading it synchronises the device)."""
        if self.greedy:
            return int(logits[0].argmax())
        scores = self.warpers(None, logits.float().cpu())
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.gen)[0, 0])


class HFGenerator(Generator):
    """A loaded Hugging Face causal LM behind the Generator interface. Generation is serialised by `lock`."""

    def __init__(self, model, tokenizer, info: ModelInfo, device: torch.device | str) -> None:
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.device = torch.device(device)
        self.eos = eos_ids(model, tokenizer)
        self._stepper: Stepper | None = None

    # ---- helpers -------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, return_attention_mask=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def warmup(self, new_tokens: int = 4) -> None:
        """One short untimed generation (first-call costs: kernel selection, CUDA graph capture, cuBLAS
        handles, allocator growth) so the first measured generation is not a warm-up run."""
        self.generate("Hello world, this is a warm-up.", GenSettings(max_new_tokens=new_tokens, stop_at_eos=False))

    @property
    def stepper(self) -> Stepper:
        if self._stepper is None:
            self._stepper = make_stepper(self.model, self.info.family, self.device)
        return self._stepper

    def _check(self, prompt: str, ids: list[int], settings: GenSettings) -> None:
        if not prompt.strip() or not ids:
            raise GenerationError("The prompt is empty. Type some text for the model to continue.")
        limit = self.info.max_context
        if limit and len(ids) + settings.max_new_tokens > limit:
            raise PromptTooLongError(
                f"The prompt is {len(ids)} tokens and {settings.max_new_tokens} new tokens were asked for, but "
                f"'{self.info.name}' handles at most {limit} positions. Shorten the prompt or lower max new tokens.")

    # ---- the decode loop -------------------------------------------------------------------------
    def stream(
        self, prompt: str, settings: GenSettings, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[TokenEvent | GenerationResult]:
        settings.validate()
        # inference_mode is entered around each model call below, never across a yield: a grad-mode
        # context held open by a suspended generator would leak into the consumer's thread.
        with self.lock:
            yield from self._loop(prompt, settings, should_stop)

    def _loop(self, prompt, settings, should_stop):
        clock = _Clock(self.device)
        wall0 = time.perf_counter()
        t_req = clock.now()
        ids = self.encode(prompt)
        self._check(prompt, ids, settings)
        stepper = self.stepper
        mem = PeakMemory(str(self.device))
        sample = Sampler(settings)
        detok = IncrementalDecoder(self.tokenizer)
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)

        stamps: list[float] = []
        out_ids: list[int] = []
        finish = "length"
        t_submit = t_logits = clock.now()
        if should_stop is not None and should_stop():
            finish, n_steps = "cancelled", 0
        else:
            n_steps = settings.max_new_tokens
            try:
                with torch.inference_mode():
                    logits = stepper.prefill(input_ids)
            except torch.OutOfMemoryError as e:
                raise GenerationError(
                    f"'{self.info.name}' ran out of memory on the prompt ({len(ids)} tokens). Shorten the prompt "
                    "or use a smaller model.") from e
            t_logits = clock.now()
        for i in range(n_steps):
            try:
                with torch.inference_mode():
                    if i:
                        logits = stepper.step(torch.tensor([out_ids[-1]], dtype=torch.long, device=self.device))
                    tok = sample(logits)
            except torch.OutOfMemoryError as e:
                raise GenerationError(
                    f"'{self.info.name}' ran out of memory after {i} new tokens. Lower max new tokens or use a "
                    "smaller model.") from e
            stamps.append(clock.now())
            out_ids.append(tok)
            mem.sample()
            delta = detok.push(tok)
            out_wall = time.perf_counter()
            yield TokenEvent(i, tok, delta, out_wall - wall0)
            clock.paused += time.perf_counter() - out_wall
            if settings.stop_at_eos and tok in self.eos:
                finish = "eos"
                break
            if i + 1 < n_steps and should_stop is not None and should_stop():
                finish = "cancelled"
                break
        t_end = clock.now()

        gaps = [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:], strict=False)]
        decode_s = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        metrics = GenMetrics(
            prompt_tokens=len(ids),
            new_tokens=len(out_ids),
            ttft_ms=(stamps[0] - t_req) * 1e3 if stamps else None,
            prefill_ms=(t_logits - t_submit) * 1e3 if n_steps else None,
            tpot_ms=percentile(gaps, 50),
            tpot_p90_ms=percentile(gaps, 90),
            decode_tok_s=(len(stamps) - 1) / decode_s if decode_s > 0 else None,
            total_ms=(t_end - t_req) * 1e3,
            peak_mem_bytes=mem.peak(),
            peak_mem_kind=mem.kind,
            cache_bytes=stepper.cache_bytes(),
            cache_alloc_bytes=stepper.cache_alloc_bytes() if hasattr(stepper, "cache_alloc_bytes") else None,
            cache_kind=stepper.cache_kind,
            path=stepper.path,
            device=self.info.device,
            dtype=self.info.dtype,
        )
        release = getattr(stepper, "release", None)
        if callable(release):  # free a dynamic cache now rather than at the next generation
            release()
        yield GenerationResult(self.info.name, self.info.family, prompt, detok.text(), out_ids, finish,
                               metrics, settings)

    # ---- scoring ---------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[tuple[str, str]], batch_size: int = 8) -> list[tuple[float, bool]]:
        """Sum of continuation log-probs and whether greedy decoding reproduces it, for each (context,
        continuation). Tokenised as lm-evaluation-harness does: encode(context + continuation), the
        continuation being the tokens after encode(context). Batches of similar length, right-padded
        (causal models: padding after a sequence cannot change its logits, for SSMs and transformers)."""
        pairs = []
        for ctx, cont in requests:
            ctx_ids = self.encode(ctx) if ctx else []
            whole = self.encode(ctx + cont)
            n_ctx = len(ctx_ids) if whole[:len(ctx_ids)] == ctx_ids else len(self.encode(ctx.rstrip()))
            cont_ids = whole[n_ctx:]
            if not cont_ids:
                raise GenerationError("A continuation to score is empty; every choice needs some text.")
            if n_ctx == 0:  # nothing to condition on: start from the BOS / EOS token like lm-eval
                start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else min(self.eos)
                whole = [start] + whole
                n_ctx = 1
            limit = self.info.max_context
            if limit and len(whole) > limit:  # keep the end (the continuation), drop the oldest context
                cut = len(whole) - limit
                whole, n_ctx = whole[cut:], max(1, n_ctx - cut)
            pairs.append((whole, n_ctx))
        results: list[tuple[float, bool] | None] = [None] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with self.lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                width = max(len(pairs[i][0]) for i in chunk)
                batch = torch.full((len(chunk), width), pad, dtype=torch.long)
                for row, i in enumerate(chunk):
                    batch[row, :len(pairs[i][0])] = torch.tensor(pairs[i][0])
                logits = self.model(input_ids=batch.to(self.device), use_cache=False).logits  # [B, T, V]
                for row, i in enumerate(chunk):
                    whole, n_ctx = pairs[i]
                    target = torch.tensor(whole[n_ctx:], device=self.device)
                    # position t predicts token t+1; only the continuation's rows go to float32
                    lp = torch.log_softmax(logits[row, n_ctx - 1:len(whole) - 1].float(), dim=-1)
                    total = float(lp.gather(-1, target[:, None]).sum())
                    results[i] = (total, bool((lp.argmax(-1) == target).all()))
        return results  # type: ignore[return-value]


def model_info(name: str, family: str, model, device: torch.device, device_name: str, path: str,
               placeholder: bool = False, train_context: int | None = None) -> ModelInfo:
    max_pos = getattr(model.config, "max_position_embeddings", None)
    return ModelInfo(
        name=name,
        family=family,
        n_params=sum(p.numel() for p in model.parameters()),
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        device=device_name,
        max_context=None if family in SSM_FAMILIES else max_pos,
        train_context=train_context or (max_pos if family not in SSM_FAMILIES else None),
        path=path,
        placeholder=placeholder,
    )
