import numpy as np
import pytest
import torch

from backend.generation.interface import GenSettings
from backend.generation.metrics import percentile, tensor_bytes
from tests.backend.helpers import tiny_generator


def test_percentile_matches_numpy():
    xs = [5.0, 1.0, 3.0, 2.0, 10.0, 7.5]
    for q in (0, 10, 50, 90, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert percentile([], 50) is None and percentile([4.0], 90) == 4.0


def test_tensor_bytes_dedups_shared_storage():
    a = torch.zeros(10, 4)  # 160 bytes
    b = torch.zeros(3, dtype=torch.float64)  # 24 bytes

    class Holder:
        def __init__(self):
            self.layers = [{"k": a, "view": a[2:]}, (b, a)]
            self.mod = torch.nn.Linear(100, 100)  # module weights are never counted

    assert tensor_bytes(Holder()) == 160 + 24


def test_kv_cache_grows_with_length_ssm_state_constant(tiny_dirs):
    tr, ssm = tiny_generator(tiny_dirs, "llama"), tiny_generator(tiny_dirs, "mamba")
    s4, s20 = GenSettings(max_new_tokens=4, stop_at_eos=False), GenSettings(max_new_tokens=20, stop_at_eos=False)
    p = "Once upon a time"
    a, b = tr.generate(p, s4).metrics, tr.generate(p, s20).metrics
    assert a.cache_kind == "kv" and b.cache_bytes > a.cache_bytes
    cfg = tr.model.config
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    # the last generated token is never fed back, so the cache holds prompt + new - 1 positions
    assert b.cache_bytes == per_token * (b.prompt_tokens + b.new_tokens - 1)
    c, d = ssm.generate(p, s4).metrics, ssm.generate(p, s20).metrics
    assert c.cache_kind == "ssm_state" and c.cache_bytes == d.cache_bytes > 0
    mc = ssm.model.config
    conv = mc.intermediate_size * mc.conv_kernel
    state = mc.intermediate_size * mc.state_size
    assert c.cache_bytes == mc.num_hidden_layers * (conv + state) * 4


def test_timing_fields_are_consistent(tiny_dirs):
    m = tiny_generator(tiny_dirs, "gpt_neox").generate("Hello there", GenSettings(max_new_tokens=6, stop_at_eos=False)).metrics
    assert m.new_tokens == 6 and m.prompt_tokens > 0
    assert 0 < m.prefill_ms <= m.ttft_ms <= m.total_ms
    assert 0 < m.tpot_ms <= m.tpot_p90_ms and m.decode_tok_s > 0
    assert m.peak_mem_kind == "cpu_rss" and m.peak_mem_bytes > 0 and m.dtype == "float32"
    assert m.path == "sdpa"


def test_incremental_detokeniser_holds_split_utf8_and_matches_decode():
    from backend.generation.decode import IncrementalDecoder
    from backend.models.placeholders import build_tokenizer

    tok = build_tokenizer()
    text = "héllo wörld 日本 42 ok"
    ids = tok(text)["input_ids"]
    assert len(ids) > len(text.split())  # byte-level pieces: some tokens are half a character
    dec = IncrementalDecoder(tok)
    deltas = [dec.push(i) for i in ids]
    assert "".join(deltas) == text == dec.text()
    assert not any("\ufffd" in d for d in deltas)
    assert "" in deltas  # a token holding half of a multi-byte character emits nothing yet
    assert deltas[0] == "h"  # the first token's text comes out at once, not at the first space
