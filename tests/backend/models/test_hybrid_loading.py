"""A hybrid (Hugging Face Bamba: Mamba-2 and attention layers) through the user path: the registry calls it family
"hybrid", the loader puts its Mamba layers on our kernels (path "cpu-chunked" on CPU, recorded with every
generation), falls back to Hugging Face's path when our kernels fail, and its info splits the cache into the
Mamba layers' state and the attention layers' KV bytes per token."""

from __future__ import annotations

import pytest

from backend.generation.interface import GenerationResult, GenSettings, TokenEvent
from backend.models import loading, registry
from tests.backend.helpers import build_tiny_hybrid

HIDDEN, LAYERS, ATTN, HEADS, D_HEAD, STATE, KV_HEADS, CONV = 32, 3, [1], 4, 16, 8, 2, 4


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    """A tiny saved BambaForCausalLM (random weights) with the placeholders' tiny tokenizer."""
    return build_tiny_hybrid(tmp_path_factory.mktemp("tiny-hybrid"), layers=LAYERS, attn=tuple(ATTN))


def expected_bytes(elem: int = 4) -> tuple[int, int]:
    """(conv + SSM state of the Mamba layers, K + V per token of the attention layers), batch 1, fp32."""
    n_mamba, n_attn = LAYERS - len(ATTN), len(ATTN)
    conv_dim = 2 * HIDDEN + 2 * STATE  # intermediate (expand 2) + B and C of one group
    state = n_mamba * (conv_dim * CONV + HEADS * D_HEAD * STATE) * elem
    head_dim = HIDDEN // 4
    return state, n_attn * 2 * KV_HEADS * head_dim * elem


def test_loads_as_a_hybrid_on_our_kernels_and_streams(hybrid_dir, monkeypatch):
    from backend.generation import ssm_fast
    from backend.generation.steppers import EagerStepper
    from backend.models.manager import ModelManager

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    spec = registry.add_local_model(hybrid_dir, name="tiny-hybrid")
    assert spec.family == "hybrid"
    g = ModelManager(fake=False).get(spec.name, device="cpu")
    assert g.info.family == "hybrid" and g.info.path == "cpu-chunked" and g.model.arena_path == "cpu-chunked"
    assert ssm_fast.is_enabled(g.model) and type(g.stepper) is EagerStepper  # no SSM graph stepper for a hybrid
    assert g.info.max_context == 512  # attention layers: the trained positions bound it, unlike a pure SSM
    events = list(g.stream("Hello there", GenSettings(max_new_tokens=5, stop_at_eos=False)))
    tokens, result = events[:-1], events[-1]
    assert len(tokens) == 5 and all(isinstance(e, TokenEvent) for e in tokens)
    assert isinstance(result, GenerationResult) and result.family == "hybrid"
    assert result.metrics.path == "cpu-chunked" and result.metrics.new_tokens == 5
    assert result.metrics.cache_bytes and result.metrics.cache_bytes > 0
    assert result.metrics.cache_kind == "ssm_state+kv"  # the Mamba layers' state and the attention layers' KV


def test_info_has_both_state_bytes_and_kv_bytes_per_token(hybrid_dir, tiny_dirs, monkeypatch):
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    g = loading.load_generator(registry.ModelSpec("h", "hybrid", "local", str(hybrid_dir)), device="cpu")
    assert (g.info.state_bytes, g.info.kv_bytes_per_token) == expected_bytes()
    assert g.info.state_bytes > 0 and g.info.kv_bytes_per_token > 0
    # the same measurement on the pure families: a Mamba-2 has no KV, a transformer no state
    ssm = loading.load_generator(registry.ModelSpec("m2", "mamba2", "local", str(tiny_dirs["mamba2"])), device="cpu")
    assert ssm.info.state_bytes > 0 and ssm.info.kv_bytes_per_token == 0
    tf = loading.load_generator(registry.ModelSpec("l", "transformer", "local", str(tiny_dirs["llama"])), device="cpu")
    assert tf.info.state_bytes == 0 and tf.info.kv_bytes_per_token > 0


def test_hybrid_falls_back_to_hf_when_our_kernels_fail(hybrid_dir, monkeypatch):
    from kernels import dispatch

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)

    def broken(*a, **k):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(dispatch, "ssd_chunk_scan", broken)
    g = loading.load_generator(registry.ModelSpec("h", "hybrid", "local", str(hybrid_dir)), device="cpu")
    assert g.info.path == "hf-torch" and g.model.arena_path == "hf-torch"
    assert not any("forward" in m.__dict__ for m in g.model.modules() if type(m).__name__ == "BambaMixer")
    res = g.generate("Hello", GenSettings(max_new_tokens=3, stop_at_eos=False))
    assert res.metrics.path == "hf-torch" and res.metrics.new_tokens == 3
    assert g.info.state_bytes == expected_bytes()[0] and g.info.kv_bytes_per_token == expected_bytes()[1]


def test_a_hybrid_without_our_mixers_keeps_the_attention_path(tiny_dirs, monkeypatch):
    """family "hybrid" also names Jamba / Zamba2, whose SSM layers our kernels do not serve: nothing is patched
    (a Llama folder stands in for such a model here, loaded under the "hybrid" family)."""
    monkeypatch.setitem(registry.MODEL_TYPE_FAMILY, "llama", "hybrid")
    g = loading.load_generator(registry.ModelSpec("l", "hybrid", "local", str(tiny_dirs["llama"])), device="cpu")
    assert g.info.family == "hybrid" and g.info.path == "sdpa"

