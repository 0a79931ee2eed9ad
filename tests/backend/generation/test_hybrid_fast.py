"""backend.generation.ssm_fast on a hybrid (Hugging Face BambaForCausalLM: Mamba-2 mixer layers plus attention
layers, an MLP in every layer): its Mamba layers run our kernels, its attention layers stay Hugging Face's, and
the model gives the same logits, the same decode and the same greedy tokens as on Hugging Face's own path (fp32).

Decode steps pass `position_ids`, as `generate` does: BambaModel numbers positions from 0 in every forward
without them (transformers 5.17 and 5.24), so a cached step without them puts the wrong RoPE positions on its
attention layers whatever path the Mamba layers take (`test_eager_stepper_decode_equals_full_forward`).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
VOCAB = 64


def tiny_hybrid(seed: int = 0, groups: int = 1, limit=(0.0, float("inf"))):
    """3 layers (Mamba-2, attention, Mamba-2), width 32, 4 Mamba heads x 16, d_state 8, HF chunk 16."""
    from transformers import BambaConfig, BambaForCausalLM

    torch.manual_seed(seed)
    cfg = BambaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, attn_layer_indices=[1],
                      intermediate_size=48, num_attention_heads=2, num_key_value_heads=2, mamba_n_heads=4,
                      mamba_d_head=16, mamba_n_groups=groups, mamba_d_state=8, mamba_expand=2, mamba_d_conv=4,
                      mamba_chunk_size=16, max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=0,
                      time_step_limit=limit)
    model = BambaForCausalLM(cfg)
    with torch.no_grad():  # non-trivial A, D, dt, conv bias, and sharp attention (positions matter)
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "D", "dt_bias", "conv1d.bias")):
                p.add_(torch.randn_like(p) * 0.3)
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(6.0)
    return model.eval()


KINDS = [pytest.param({}, id="G1"), pytest.param({"groups": 2, "limit": (0.01, 2.0)}, id="G2-dt-limit")]
# a time_step_limit that clamps most steps: transformers applies it in the chunked scan (prefill) but not in the
# single-step update (decode), so only prefill can be compared with it
BINDING = pytest.param({"groups": 2, "limit": (1.0, 1.1)}, id="G2-dt-limit-binding")
PATHS = [pytest.param("", "cpu-chunked", id="auto=cpu-chunked"), pytest.param("reference", "reference", id="reference")]


def ids_for(length: int, seed: int = 1, batch: int = 2) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def mixers(model):
    return [m for m in model.modules() if type(m).__name__ == "BambaMixer"]


def decode_logits(model, ids: torch.Tensor, cut: int, mask: torch.Tensor | None = None, chunk: int = 1) -> torch.Tensor:
    """Prefill ids[:, :cut] with a cache, then feed the rest `chunk` tokens at a time on that cache (explicit
    positions and the growing mask, as `generate` does): the logits at positions cut-1..L-1 (chunk 1: each a
    decode step; chunk > 1: a multi-token continuation, which starts from the cached conv and SSM state)."""
    pos = torch.arange(ids.shape[1])[None] if mask is None else (mask.cumsum(-1) - 1).clamp_min(0)
    pos = pos.to(ids.device)
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # 5.24 / 5.17
    cache, logits, start, n = None, [], 0, cut
    while start < ids.shape[1]:
        end = min(ids.shape[1], start + n)
        kw = {key: cache} if cache is not None else {}
        out = model(input_ids=ids[:, start:end], attention_mask=None if mask is None else mask[:, :end],
                    position_ids=pos[:, start:end], use_cache=True, **kw)
        cache = out[key]
        logits.append(out.logits[:, -1:] if start == 0 else out.logits)
        start, n = end, chunk
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("kind", [*KINDS, BINDING])
@pytest.mark.parametrize(("env", "path"), PATHS)
def test_prefill_logits_equal_hf(kind, env, path, monkeypatch):
    from backend.generation import ssm_fast

    monkeypatch.setenv("SSM_ARENA_KERNELS", env)
    model = tiny_hybrid(**kind)
    batches = [ids_for(n, seed=n) for n in (1, 7, 33)]  # 33: more than two of HF's 16-token chunks
    with torch.no_grad():
        want = [model(ids).logits for ids in batches]
        if kind.get("limit") == (1.0, 1.1):  # the clamp does change the logits: the test can see it
            unclamped = tiny_hybrid(**{**kind, "limit": (0.0, float("inf"))})
            assert (unclamped(batches[2]).logits - want[2]).abs().max() > 1e-4
    assert ssm_fast.enable(model) == path and model.arena_path == path and ssm_fast.is_enabled(model)
    for ids, w in zip(batches, want, strict=True):
        with torch.no_grad():
            got = model(ids).logits
        assert torch.allclose(got, w, atol=1e-5, rtol=1e-5), (ids.shape, (got - w).abs().max())


def test_every_mamba_layer_runs_our_kernels_and_attention_stays_hf(monkeypatch):
    from backend.generation import ssm_fast
    from kernels import dispatch

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid()
    assert ssm_fast.supports(model) and len(mixers(model)) == 2
    ssm_fast.enable(model)
    attn = [m for m in model.modules() if type(m).__name__ == "BambaAttention"]
    assert len(attn) == 1 and "forward" not in attn[0].__dict__  # Hugging Face's SDPA attention, unpatched
    assert all("forward" in m.__dict__ for m in mixers(model))
    calls = {"prefill": 0, "decode": 0}
    scan, update = dispatch.ssd_chunk_scan, dispatch.selective_state_update
    monkeypatch.setattr(dispatch, "ssd_chunk_scan", lambda *a, **k: calls.__setitem__("prefill", calls["prefill"] + 1)
                        or scan(*a, **k))
    monkeypatch.setattr(dispatch, "selective_state_update",
                        lambda *a, **k: calls.__setitem__("decode", calls["decode"] + 1) or update(*a, **k))
    fused = dispatch.fused  # the CPU path's whole decode step in one call ("mamba2_step") counts as a decode

    def counted(name, device):
        op = fused(name, device)
        return None if op is None else (lambda *a: calls.__setitem__("decode", calls["decode"] + 1) or op(*a))

    monkeypatch.setattr(dispatch, "fused", counted)
    with torch.no_grad():
        decode_logits(model, ids_for(6), cut=4)
    assert calls == {"prefill": 2, "decode": 2 * 2}  # 2 Mamba layers x (1 prefill, 2 decode steps)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("env", "path"), PATHS)
def test_decode_steps_equal_the_full_forward(kind, env, path, monkeypatch):
    """A decode step's logits equal the full forward's at that position (HF's and ours), and ours equal HF's."""
    from backend.generation import ssm_fast

    monkeypatch.setenv("SSM_ARENA_KERNELS", env)
    model = tiny_hybrid(**kind)
    ids = ids_for(21)
    with torch.no_grad():
        full = model(ids).logits
        hf_decode = decode_logits(model, ids, cut=9)
        assert ssm_fast.enable(model) == path
        ours = decode_logits(model, ids, cut=9)
        prefill_one = decode_logits(model, ids, cut=1)  # a one-token prefill, then 20 decode steps
        continued = decode_logits(model, ids, cut=5, chunk=7)  # prefill 5, then 7-token continuations
    assert torch.allclose(hf_decode, full[:, 8:], atol=1e-5, rtol=1e-5), (hf_decode - full[:, 8:]).abs().max()
    assert torch.allclose(ours, full[:, 8:], atol=1e-5, rtol=1e-5), (ours - full[:, 8:]).abs().max()
    assert torch.allclose(ours, hf_decode, atol=1e-5, rtol=1e-5), (ours - hf_decode).abs().max()
    assert torch.allclose(prefill_one, full, atol=1e-5, rtol=1e-5), (prefill_one - full).abs().max()
    assert torch.allclose(continued, full[:, 4:], atol=1e-5, rtol=1e-5), (continued - full[:, 4:]).abs().max()


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generate_gives_the_same_tokens(kind, monkeypatch):
    from backend.generation import ssm_fast

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid(seed=2, **kind)
    ids = ids_for(7, seed=3)
    kw = dict(max_new_tokens=24, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want = model.generate(ids, **kw)
        assert ssm_fast.enable(model) == "cpu-chunked"
        got = model.generate(ids, **kw)
    assert got.shape == (2, 7 + 24) and torch.equal(got, want)
    assert len(set(got[:, 7:].flatten().tolist())) > 3  # a real continuation, not one repeated token


def test_left_padded_batch_equals_hf(monkeypatch):
    """Batch of 2, the second row left-padded (attention_mask): prefill logits at real positions, the cached decode
    after it and greedy generation equal Hugging Face's own path on the same mask."""
    from backend.generation import ssm_fast

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid(seed=4, groups=2, limit=(0.01, 2.0))
    ids = ids_for(19, seed=5)
    mask = torch.ones_like(ids)
    mask[1, :6] = 0
    ids[1, :6] = 0  # the pad token
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        hf_full = model(ids, attention_mask=mask).logits
        hf_decode = decode_logits(model, ids, cut=11, mask=mask)
        hf_gen = model.generate(ids, attention_mask=mask, **kw)
        ssm_fast.enable(model)
        full = model(ids, attention_mask=mask).logits
        decode = decode_logits(model, ids, cut=11, mask=mask)
        gen = model.generate(ids, attention_mask=mask, **kw)
    real = mask.bool()
    assert torch.allclose(full[real], hf_full[real], atol=1e-5, rtol=1e-5), (full - hf_full)[real].abs().max()
    assert torch.allclose(decode, hf_decode, atol=1e-5, rtol=1e-5), (decode - hf_decode).abs().max()
    assert torch.allclose(decode, full[:, 10:], atol=1e-5, rtol=1e-5), (decode - full[:, 10:]).abs().max()
    assert torch.equal(gen, hf_gen)
    # and the padding did not leak into the padded row's Mamba state: its real tokens alone give the same logits
    with torch.no_grad():
        alone = model(ids[1:, 6:]).logits
    assert torch.allclose(full[1, 6:], alone[0], atol=1e-4, rtol=1e-4), (full[1, 6:] - alone[0]).abs().max()


def test_path_is_recorded_and_disable_restores_hf(monkeypatch):
    from backend.generation import ssm_fast
    from backend.generation.steppers import EagerStepper, make_stepper

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid()
    ids = ids_for(9)
    with torch.no_grad():
        want = model(ids).logits
    assert ssm_fast.enable(model) == "cpu-chunked" and model.arena_path == "cpu-chunked"
    forwards = [m.forward for m in mixers(model)]
    assert ssm_fast.enable(model) == "cpu-chunked" and [m.forward for m in mixers(model)] == forwards  # idempotent
    stepper = make_stepper(model, "hybrid", "cpu")
    assert type(stepper) is EagerStepper and stepper.path == "cpu-chunked"
    ssm_fast.disable(model)
    assert not ssm_fast.is_enabled(model) and not hasattr(model, "arena_path")
    assert all("forward" not in m.__dict__ and not m._arena_fast for m in mixers(model))
    assert EagerStepper(model, "hybrid").path == "sdpa"  # nothing recorded: the attention implementation
    with torch.no_grad():
        assert torch.equal(model(ids).logits, want)


def test_ssm_stepper_declines_a_hybrid(monkeypatch):
    """The static-state SSM stepper is for pure Mamba / Mamba-2: a hybrid goes to the generic eager stepper, even
    on the CPU fast path and even when it is mislabelled as a Mamba-2."""
    from backend.generation import ssm_fast
    from backend.generation.ssm_stepper import factory

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid()
    assert ssm_fast.enable(model) == "cpu-chunked"
    for family in ("hybrid", "mamba2"):
        assert factory(model, family, "cpu") is None
        assert factory(model, family, "cuda") is None


def test_enable_rejects_a_model_without_ssm_mixers():
    from transformers import LlamaConfig, LlamaForCausalLM

    from backend.generation import ssm_fast

    model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                                         num_attention_heads=2, vocab_size=32))
    assert not ssm_fast.supports(model)
    with pytest.raises(ValueError, match=r"^LlamaForCausalLM has no MambaMixer, Mamba2Mixer or BambaMixer: .*\.$"):
        ssm_fast.enable(model)


def test_eager_stepper_decode_equals_full_forward(monkeypatch):
    """The user path's stepper: BambaModel numbers RoPE positions from 0 in every call unless given position_ids,
    so this fails if EagerStepper leaves them out (it did until issue 14)."""
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    got, want, _ = eager_steps(tiny_hybrid(), ids_for(13), cut=8)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()


def eager_steps(model, ids: torch.Tensor, cut: int):
    """The model's full-forward logits at positions cut-1.. and an EagerStepper's (ssm_fast enabled): prefill of
    ids[:, :cut], then one step per remaining token. Returns (stepped [B, T, V], forward [B, T, V], stepper)."""
    from backend.generation import ssm_fast
    from backend.generation.steppers import EagerStepper

    with torch.no_grad():
        full = model(ids).logits
    ssm_fast.enable(model)
    stepper = EagerStepper(model, "hybrid")
    got = [stepper.prefill(ids[:, :cut])] + [stepper.step(ids[:, t]) for t in range(cut, ids.shape[1])]
    return torch.stack(got, dim=1), full[:, cut - 1:], stepper


def test_triton_kernels_in_the_interpreter_match_hf():
    """The same checks through our Triton kernels (forced path, TRITON_INTERPRET=1), in a fresh process so the
    kernels are decorated for the interpreter whatever this session imported before."""
    script = textwrap.dedent("""
        import torch
        import tests.kernels.conftest  # noqa: F401  (vectorised interpreter scan: same results, faster)
        from tests.backend.generation.test_hybrid_fast import decode_logits, ids_for, tiny_hybrid
        from backend.generation import ssm_fast
        for kind in ({}, {"groups": 2, "limit": (0.01, 2.0)}):
            model = tiny_hybrid(**kind)
            ids = ids_for(19)
            with torch.no_grad():
                full = model(ids).logits
                assert ssm_fast.enable(model) == "triton"
                ours = model(ids).logits
                decode = decode_logits(model, ids, cut=11)
            assert torch.allclose(ours, full, atol=1e-5, rtol=1e-5), (kind, (ours - full).abs().max())
            assert torch.allclose(decode, full[:, 10:], atol=1e-5, rtol=1e-5), (kind, (decode - full[:, 10:]).abs().max())
            print("ok", kind)
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1", "SSM_ARENA_KERNELS": "triton", "USE_HUB_KERNELS": "0",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("ok ") == 2, proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")
@pytest.mark.parametrize("kind", KINDS)
def test_triton_on_gpu_matches_hf(kind, monkeypatch):
    """On a GPU (compiled Triton kernels, fp32): prefill, left padding, decode and greedy generation agree with
    Hugging Face's path, the path is "triton", and the SSM graph stepper leaves the hybrid to the eager one.
    Tolerances as tests/backend/generation/test_ssm_fast_gpu.py (cuDNN may run HF's conv1d in TF32); greedy
    tokens are checked against HF's logits (each chosen token within the tolerance of HF's best), since a
    near-tie of a random model may break either way."""
    from backend.generation import ssm_fast
    from backend.generation.ssm_stepper import factory
    from backend.generation.steppers import EagerStepper, make_stepper

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid(**kind).cuda()
    ids = ids_for(37).cuda()
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    tol = dict(atol=2e-3, rtol=1e-3)
    with torch.no_grad():
        full = model(ids).logits
        padded = model(ids, attention_mask=mask).logits
        assert ssm_fast.enable(model) == "triton"
        got_full = model(ids).logits
        got_padded = model(ids, attention_mask=mask).logits
        decode = decode_logits(model, ids, cut=20)
        got = model.generate(ids[:, :9], max_new_tokens=16, do_sample=False, pad_token_id=0)
        ssm_fast.disable(model)
        hf_on_got = model(got).logits[:, 8:-1].float()  # HF's logits for each position ours generated at
        ssm_fast.enable(model)
    assert torch.allclose(got_full, full, **tol), (got_full - full).abs().max()
    real = mask.bool()
    assert torch.allclose(got_padded[real], padded[real], **tol), (got_padded - padded)[real].abs().max()
    assert torch.allclose(decode, full[:, 19:], **tol), (decode - full[:, 19:]).abs().max()
    chosen = hf_on_got.gather(-1, got[:, 9:, None])[..., 0]
    is_eos = (got[:, 9:] == model.config.eos_token_id).int()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # generate pads a finished row: nothing chosen there
    assert got.shape == (2, 25) and ((chosen >= hf_on_got.max(-1).values - 2e-3) | after_eos).all()
    assert factory(model, "hybrid", "cuda") is None and factory(model, "mamba2", "cuda") is None
    stepper = make_stepper(model, "hybrid", "cuda")
    assert type(stepper) is EagerStepper and stepper.path == "triton"
