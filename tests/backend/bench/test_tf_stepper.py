"""The transformer's static-cache stepper on CPU (no CUDA graph): same logits as a full forward."""

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from backend.generation.tf_stepper import StaticGraphStepper, factory, kv_bytes, kv_bytes_per_position


def _neox():
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                            intermediate_size=64, max_position_embeddings=256, rotary_pct=0.25)).eval()


def _llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=64,
                                        max_position_embeddings=256)).eval()


def _check_decode(model, stepper, prompt, steps):
    logits, seq = stepper.prefill(prompt), prompt
    with torch.no_grad():
        torch.testing.assert_close(logits, model(seq).logits[:, -1], atol=1e-4, rtol=1e-4)
        for _ in range(steps):
            tok = logits.argmax(-1)
            seq = torch.cat([seq, tok[:, None]], 1)
            logits = stepper.step(tok)
            torch.testing.assert_close(logits, model(seq).logits[:, -1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("build", [_neox, _llama], ids=["gpt-neox", "llama-gqa"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_static_steps_match_full_forward_and_grow(build, attn):
    model = build()
    model.set_attn_implementation(attn)
    stepper = StaticGraphStepper(model, max_new_tokens=3, use_cuda_graph=False)
    assert stepper.path == f"{attn}+static" and stepper.cache_kind == "kv"
    _check_decode(model, stepper, torch.randint(0, 97, (3, 7)), steps=8)  # 8 > 3 reserved: the cache grows
    assert stepper.capacity >= 7 + 8


def test_cache_is_reused_across_prompts_and_sized_by_capacity():
    model = _neox()
    stepper = StaticGraphStepper(model, max_new_tokens=4, use_cuda_graph=False)
    stepper.prefill(torch.randint(0, 97, (2, 12)))
    cache = stepper.cache
    # 2 layers x (K and V) x [B=2, H=4, M=16, Dh=8] float32 allocated; 12 of the 16 slots written
    assert stepper.cache_alloc_bytes() == 2 * 2 * (2 * 4 * 16 * 8) * 4
    assert stepper.cache_bytes() == 2 * 2 * (2 * 4 * 12 * 8) * 4
    _check_decode(model, stepper, torch.randint(0, 97, (2, 9)), steps=3)
    assert stepper.cache is cache  # same batch, fits: no new allocation
    stepper.prefill(torch.randint(0, 97, (1, 9)))
    assert stepper.cache is not cache  # another batch size: a new cache


def test_factory_declines_cpu_and_ssms():
    model = _neox()
    assert factory(model, "transformer", "cpu") is None
    assert factory(model, "mamba", "cuda") is None


def test_graph_mode_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        StaticGraphStepper(_neox(), use_cuda_graph=True)


def test_capacity_buckets_let_prompts_of_other_lengths_reuse_the_cache():
    model = _neox()
    stepper = StaticGraphStepper(model, max_new_tokens=8, use_cuda_graph=False, capacity_buckets=True)
    stepper.prefill(torch.randint(0, 97, (1, 20)))
    assert stepper.capacity == 32  # 20 + 8 rounded up to a power of two
    cache = stepper.cache
    _check_decode(model, stepper, torch.randint(0, 97, (1, 23)), steps=2)
    assert stepper.cache is cache
    stepper.prefill(torch.randint(0, 97, (1, 40)))
    assert stepper.capacity == 64 and stepper.cache is not cache


def test_a_failed_capture_falls_back_to_eager_static_steps(caplog):
    model = _neox()
    stepper = StaticGraphStepper(model, max_new_tokens=4, use_cuda_graph=False)
    stepper.use_cuda_graph, stepper.path = True, stepper.path + "+cudagraph"  # pretend we are on CUDA

    def boom(length):
        stepper._body()  # a partial warm-up step moves the counters before the failure
        raise RuntimeError("operation not permitted when stream is capturing")

    stepper._capture = boom
    _check_decode(model, stepper, torch.randint(0, 97, (2, 9)), steps=3)
    assert stepper.path == "sdpa+static" and not stepper.use_cuda_graph
    assert "CUDA graph capture failed" in caplog.text


@pytest.mark.parametrize("build", [_neox, _llama], ids=["gpt-neox", "llama-gqa"])
def test_cache_bytes_count_written_positions_and_the_allocation_separately(build):
    """cache_bytes: prompt + fed-back tokens x every layer's K and V per position (GQA: KV heads);
    cache_alloc_bytes: the whole static allocation, here a power-of-two bucket much larger than in use."""
    model = build()
    stepper = StaticGraphStepper(model, max_new_tokens=4, use_cuda_graph=False, capacity_buckets=True)
    assert stepper.cache_bytes() == stepper.cache_alloc_bytes() == 0  # nothing allocated yet
    batch, length = 3, 21
    per_pos = kv_bytes_per_position(model.config, batch, model.dtype)
    heads = 2 if build is _llama else 4
    assert per_pos == 2 * 2 * batch * heads * 8 * 4  # layers x (K, V) x B x KV heads x Dh x fp32
    logits = stepper.prefill(torch.randint(0, 97, (batch, length)))
    assert stepper.capacity == 32
    assert stepper.cache_bytes() == per_pos * length
    assert stepper.cache_alloc_bytes() == per_pos * 32
    for i in range(1, 13):  # past the 32 slots: the cache grows (re-allocates), the count stays exact
        logits = stepper.step(logits.argmax(-1))
        assert stepper.cache_bytes() == per_pos * (length + i)
    assert stepper.cache_alloc_bytes() == per_pos * stepper.capacity and stepper.capacity > 32
    # a reused cache with a shorter prompt: only what this generation wrote counts
    stepper.prefill(torch.randint(0, 97, (batch, 5)))
    assert stepper.cache_bytes() == per_pos * 5
    assert stepper.cache_alloc_bytes() == per_pos * stepper.capacity
    stepper.close()
    assert stepper.cache_bytes() == stepper.cache_alloc_bytes() == 0


def test_kv_bytes_arithmetic():
    k = torch.zeros(2, 4, 16, 8, dtype=torch.bfloat16)  # [B, H, M, Dh]
    v = torch.zeros_like(k)
    per_pos = 2 * 4 * 8 * 2
    assert kv_bytes([k, v], 5) == (2 * per_pos * 5, 2 * per_pos * 16)
    assert kv_bytes([k, k, None, v], 0) == (0, 2 * per_pos * 16)  # shared storage once, None skipped
    assert kv_bytes([k, v], 99)[0] == 2 * per_pos * 16  # never more than the allocation
