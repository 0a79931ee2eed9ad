import threading
from pathlib import Path

import pytest
import torch

from backend.generation.interface import (
    GenerationError,
    GenerationResult,
    GenSettings,
    PromptTooLongError,
    TokenEvent,
)
from backend.models import registry
from backend.models.loading import load_generator
from backend.models.manager import ModelManager
from backend.models.placeholders import build_tiny
from tests.backend.helpers import tiny_generator

ARCHS = ["mamba", "mamba2", "llama", "gpt_neox"]
PROMPT = "Question: what is 12 plus 30? Answer:"


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_matches_hf_generate(tiny_dirs, arch):
    g = tiny_generator(tiny_dirs, arch)
    res = g.generate(PROMPT, GenSettings(max_new_tokens=12))
    ids = torch.tensor([g.encode(PROMPT)])
    ref = g.model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:].tolist()
    assert res.token_ids == ref
    assert res.text == g.tokenizer.decode(ref, skip_special_tokens=True)
    again = g.generate(PROMPT, GenSettings(max_new_tokens=12))
    assert again.token_ids == res.token_ids


@pytest.mark.parametrize("arch", ARCHS)
def test_prefill_then_steps_match_full_forward(tiny_dirs, arch):
    g = tiny_generator(tiny_dirs, arch)
    ids = torch.tensor([g.encode(PROMPT + " 42. Next question")])
    k = 5
    with torch.inference_mode():
        full = g.model(input_ids=ids, use_cache=False).logits[0]
        st = g.stepper
        got = [st.prefill(ids[:, :-k])[0]]
        for t in ids[0, -k:-1]:
            got.append(st.step(t.view(1))[0])
    want = full[-k - 1:-1]
    torch.testing.assert_close(torch.stack(got), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["mamba2", "llama"])
def test_stream_events_cancel_and_detokenise(tiny_dirs, arch):
    g = tiny_generator(tiny_dirs, arch)
    seen = []

    def should_stop():
        return len(seen) >= 3

    events = []
    for ev in g.stream(PROMPT, GenSettings(max_new_tokens=30, stop_at_eos=False), should_stop):
        events.append(ev)
        if isinstance(ev, TokenEvent):
            seen.append(ev)
    res = events[-1]
    assert isinstance(res, GenerationResult) and res.finish_reason == "cancelled"
    assert [e.index for e in seen] == [0, 1, 2] and res.token_ids == [e.token_id for e in seen]
    assert res.metrics.new_tokens == 3
    streamed = "".join(e.text for e in seen)
    assert res.text.startswith(streamed)
    assert res.text == streamed or res.text.endswith("\ufffd")  # only a split UTF-8 tail may be held back
    full = g.generate(PROMPT, GenSettings(max_new_tokens=30, stop_at_eos=False))
    assert full.finish_reason == "length" and full.token_ids[:3] == res.token_ids


def test_eos_stops(tiny_dirs):
    g = tiny_generator(tiny_dirs, "llama")
    first = g.generate(PROMPT, GenSettings(max_new_tokens=1)).token_ids[0]
    old = g.eos
    g.eos = {first}
    try:
        res = g.generate(PROMPT, GenSettings(max_new_tokens=10))
        assert res.finish_reason == "eos" and res.token_ids == [first]
        assert len(g.generate(PROMPT, GenSettings(max_new_tokens=10, stop_at_eos=False)).token_ids) == 10
    finally:
        g.eos = old


def test_prompt_errors(tiny_dirs, tmp_path):
    g = tiny_generator(tiny_dirs, "mamba")
    with pytest.raises(GenerationError, match="empty"):
        g.generate("", GenSettings())
    with pytest.raises(GenerationError, match="empty"):
        g.generate("   \n", GenSettings())
    folder = build_tiny("llama", tmp_path / "short", max_positions=32)
    short = load_generator(registry.ModelSpec("short", "transformer", "local", str(folder)), device="cpu")
    assert short.info.max_context == 32
    with pytest.raises(PromptTooLongError, match="at most 32 positions"):
        short.generate("one two three four five six seven", GenSettings(max_new_tokens=30))
    long_prompt = "word " * 200  # SSMs have no hard position limit
    assert g.generate(long_prompt, GenSettings(max_new_tokens=2)).metrics.prompt_tokens > 32
    with pytest.raises(ValueError, match="max_new_tokens"):
        g.generate("hi", GenSettings(max_new_tokens=0))


@pytest.mark.parametrize("arch", ["mamba", "llama"])
def test_sampling_is_seeded(tiny_dirs, arch):
    g = tiny_generator(tiny_dirs, arch)

    def run(seed, **kw):
        return g.generate(PROMPT, GenSettings(max_new_tokens=16, do_sample=True, temperature=2.0, seed=seed,
                                              stop_at_eos=False, **kw)).token_ids

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert run(3, top_k=1) == g.generate(PROMPT, GenSettings(max_new_tokens=16, stop_at_eos=False)).token_ids


def test_two_threads_on_one_model(tiny_dirs):
    g = tiny_generator(tiny_dirs, "mamba2")
    want = g.generate(PROMPT, GenSettings(max_new_tokens=8, stop_at_eos=False)).token_ids
    other = "Alice gave the red box to"
    want_other = g.generate(other, GenSettings(max_new_tokens=8, stop_at_eos=False)).token_ids
    out = {}

    def work(key, prompt):
        out[key] = g.generate(prompt, GenSettings(max_new_tokens=8, stop_at_eos=False)).token_ids

    threads = [threading.Thread(target=work, args=(i, PROMPT if i % 2 == 0 else other)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == {0: want, 1: want_other, 2: want, 3: want_other}


@pytest.mark.parametrize("arch", ["mamba", "gpt_neox"])
def test_loglikelihood(tiny_dirs, arch):
    g = tiny_generator(tiny_dirs, arch)
    reqs = [(PROMPT, " 42"), ("Alice gave the red box", " to Bob"), ("The river flows", " north."), ("", "hello")]
    batched = g.loglikelihood(reqs, batch_size=4)
    single = [g.loglikelihood([r])[0] for r in reqs]
    for (a, ga), (b, gb) in zip(batched, single, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb and a < 0
    ctx, cont = reqs[1]
    whole = g.encode(ctx + cont)
    n = len(g.encode(ctx))
    with torch.inference_mode():
        lp = torch.log_softmax(g.model(input_ids=torch.tensor([whole])).logits[0].float(), -1)
    manual = sum(float(lp[i - 1, whole[i]]) for i in range(n, len(whole)))
    assert batched[1][0] == pytest.approx(manual, abs=1e-4)
    assert batched[1][1] == all(int(lp[i - 1].argmax()) == whole[i] for i in range(n, len(whole)))
    greedy = g.generate(ctx, GenSettings(max_new_tokens=3, stop_at_eos=False)).token_ids
    with torch.inference_mode():  # the greedy continuation, scored on token ids, is greedy by definition
        ids = torch.tensor([g.encode(ctx) + greedy])
        lp2 = torch.log_softmax(g.model(input_ids=ids).logits[0].float(), -1)
    assert all(int(lp2[i - 1].argmax()) == int(ids[0, i]) for i in range(ids.shape[1] - 3, ids.shape[1]))


def test_manager_loads_default_model_once():
    """toy-mamba is served from assets/models when the trained checkpoint is there, else by a placeholder."""
    from backend.models.registry import get_spec

    m = ModelManager(fake=False)
    g = m.get("toy-mamba", device="cpu")
    trained = (Path(get_spec("toy-mamba").location) / "config.json").exists()
    assert g.info.placeholder == (not trained) and g.info.family == "mamba" and g.info.path
    assert m.get("toy-mamba", device="cpu") is g and [i.name for i in m.loaded()] == ["toy-mamba"]
    assert g.generate("Hello", GenSettings(max_new_tokens=3)).metrics.new_tokens >= 1
    assert m.unload("toy-mamba") and m.loaded() == []


def test_consumer_time_is_not_model_time(tiny_dirs):
    """A slow consumer (a UI redrawing between tokens) must not inflate TPOT / total: the clock pauses
    while a TokenEvent is out. elapsed_s on the events stays wall-clock."""
    import time

    g = tiny_generator(tiny_dirs, "llama")
    events = []
    for ev in g.stream(PROMPT, GenSettings(max_new_tokens=5, stop_at_eos=False)):
        events.append(ev)
        if isinstance(ev, TokenEvent):
            time.sleep(0.4)
    m = events[-1].metrics
    assert events[-2].elapsed_s >= 4 * 0.4  # wall clock saw the sleeps
    assert m.total_ms < 1600 and m.tpot_ms < 400  # model clock did not (5 x 0.4 s of sleeping)
