import threading

import pytest

from backend.errors import UnknownModelError
from backend.generation.interface import (
    GenerationError,
    GenerationResult,
    GenSettings,
    PromptTooLongError,
    TokenEvent,
)
from backend.models.fake import FakeGenerator
from backend.models.manager import ModelManager


def test_fake_stream_shape_and_determinism():
    g = FakeGenerator("toy-mamba", "mamba")
    events = list(g.stream("Hello", GenSettings(max_new_tokens=12, stop_at_eos=False)))
    toks, res = events[:-1], events[-1]
    assert all(isinstance(e, TokenEvent) for e in toks) and isinstance(res, GenerationResult)
    assert len(toks) == 12 == res.metrics.new_tokens and res.finish_reason == "length"
    assert "".join(e.text for e in toks) == res.text
    assert res.metrics.path == "fake" and res.family == "mamba" and g.info.path == "fake"
    again = g.generate("Hello", GenSettings(max_new_tokens=12, stop_at_eos=False))
    assert again.text == res.text
    s1 = g.generate("Hello", GenSettings(max_new_tokens=12, do_sample=True, seed=1, stop_at_eos=False))
    s2 = g.generate("Hello", GenSettings(max_new_tokens=12, do_sample=True, seed=2, stop_at_eos=False))
    assert s1.text != s2.text


def test_fake_cache_semantics_and_errors():
    ssm, tr = FakeGenerator("a", "mamba"), FakeGenerator("b", "transformer")
    short, long = GenSettings(max_new_tokens=4, stop_at_eos=False), GenSettings(max_new_tokens=40, stop_at_eos=False)
    assert ssm.generate("x y", short).metrics.cache_bytes == ssm.generate("x y", long).metrics.cache_bytes
    assert tr.generate("x y", short).metrics.cache_bytes < tr.generate("x y", long).metrics.cache_bytes
    with pytest.raises(GenerationError, match="empty"):
        tr.generate("  ", short)
    with pytest.raises(PromptTooLongError):
        tr.generate("word " * 3000, short)
    stop = iter([False, False, True])
    res = ssm.generate("x", GenSettings(max_new_tokens=50, stop_at_eos=False), should_stop=lambda: next(stop))
    assert res.finish_reason == "cancelled" and res.metrics.new_tokens == 2
    ll = ssm.loglikelihood([("ctx", " a"), ("ctx", " b")])
    assert len(ll) == 2 and all(lp < 0 and isinstance(g, bool) for lp, g in ll)


def test_manager_fake_mode(monkeypatch):
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    m = ModelManager()
    assert m.fake and m.loaded() == []
    got = []
    threads = [threading.Thread(target=lambda: got.append(m.get("toy-transformer"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(g) for g in got}) == 1
    assert [i.name for i in m.loaded()] == ["toy-transformer"]
    assert m.get("state-spaces/mamba-130m-hf").info.family == "mamba"
    with pytest.raises(UnknownModelError):
        m.get("no-such-model")
    assert m.unload("toy-transformer") and not m.is_loaded("toy-transformer")
    assert not m.unload("toy-transformer")
