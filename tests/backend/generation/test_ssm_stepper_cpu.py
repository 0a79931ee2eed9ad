"""backend.generation.ssm_stepper on the CPU fast path: the static-state stepper takes CPU models, its prefill
in batch chunks equals one unchunked prefill (logits, state, the decode that follows), no chunk runs more
tokens through the blocks than its budget (what bounds prefill's peak memory), and the bound prefill and decode
loops (cpu_prefill, cpu_decode) equal the blocks' generic forward."""

from __future__ import annotations

import pytest
import torch

from backend.generation import cpu_decode, cpu_prefill
from backend.generation.cpu_decode import CPUDecodeLoop
from backend.generation.cpu_prefill import CPUPrefill
from backend.generation.ssm_stepper import SSMGraphStepper
from tests.backend.generation.test_ssm_fast import FAMILIES, tiny_model


def run(stepper, ids, steps=3):
    logits = [stepper.prefill(ids)]
    state = [t.clone() for t in stepper.cache.tensors()]
    tok = logits[0].argmax(-1)
    for _ in range(steps):
        logits.append(stepper.step(tok))
        tok = logits[-1].argmax(-1)
    return torch.stack(logits, 1), state


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("budget", [pytest.param(11, id="1-row-chunks"), pytest.param(33, id="3-row-chunks-uneven")])
def test_chunked_prefill_equals_unchunked(family, budget, monkeypatch):
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model(family)
    ids = torch.randint(0, 64, (7, 11), generator=torch.Generator().manual_seed(4))
    whole = SSMGraphStepper(model, family, use_cuda_graph=False)
    chunked = SSMGraphStepper(model, family, use_cuda_graph=False, prefill_tokens=budget)
    assert whole.prefill_rows(7, 11) == 7 and chunked.prefill_rows(7, 11) == budget // 11
    with torch.inference_mode():
        want, want_state = run(whole, ids)
        got, got_state = run(chunked, ids)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
    for g, w in zip(got_state, want_state, strict=True):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-5, rtol=1e-5)
    assert chunked.cache_bytes() == whole.cache_bytes()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("path", [pytest.param("", id="bound-prefill"), pytest.param("reference", id="mixers")])
def test_no_chunk_runs_more_tokens_than_its_budget(family, path, monkeypatch):
    """Peak-memory bookkeeping: every chunk of a chunked prefill runs at most `prefill_tokens` tokens through the
    blocks (the activations alive at once), while the state buffers hold every sequence: counted at the bound
    prefill (cpu_prefill) on the CPU path, at each mixer's forward on the reference path."""
    if path:
        monkeypatch.setenv("SSM_ARENA_KERNELS", path)
    else:
        monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model(family)
    stepper = SSMGraphStepper(model, family, use_cuda_graph=False, prefill_tokens=40)  # patches the mixers
    seen = []
    for block in model.backbone.layers:
        inner = block.mixer.forward

        def spy(hidden_states, *a, _inner=inner, **k):
            seen.append(hidden_states.shape[0] * hidden_states.shape[1])
            return _inner(hidden_states, *a, **k)

        block.mixer.forward = spy
    bound = CPUPrefill.__call__
    monkeypatch.setattr(CPUPrefill, "__call__", lambda self, ids, cache: (
        seen.extend([ids.numel()] * len(self.blocks)), bound(self, ids, cache))[1])
    with torch.inference_mode():
        stepper.prefill(torch.randint(0, 64, (9, 13), generator=torch.Generator().manual_seed(1)))
    assert isinstance(stepper._prefill, CPUPrefill) == (not path)
    assert seen and max(seen) <= 40 and sum(seen) == 9 * 13 * len(model.backbone.layers)
    assert all(t.shape[0] == 9 for t in stepper.cache.tensors())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch,length", [pytest.param(1, 1, id="B1-L1"), pytest.param(2, 3, id="B2-L3-below-conv"),
                                          pytest.param(1, 70, id="B1-L70-past-a-conv-tile"),
                                          pytest.param(3, 17, id="B3-L17")])
def test_cpu_prefill_equals_the_blocks_forward(family, batch, length, monkeypatch):
    """The bound prefill (cpu_prefill: kernels bound once per model) against the stepper's own `_run` (module
    calls through ssm_fast): last-position logits, every conv and SSM state, and the decode that follows."""
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model(family)
    ids = torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(length))
    bound = SSMGraphStepper(model, family, use_cuda_graph=False)
    plain = SSMGraphStepper(model, family, use_cuda_graph=False)
    plain.prefill = lambda prompt: (plain.cache.reset(), plain._run(prompt))[1]
    with torch.inference_mode():
        got, got_state = run(bound, ids)
        want, want_state = run(plain, ids)
    assert isinstance(bound._prefill, CPUPrefill)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
    for g, w in zip(got_state, want_state, strict=True):
        assert g.shape == w.shape and g.is_contiguous() and torch.allclose(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_prefill_rebinds_after_a_parameter_changes(family, monkeypatch):
    """The bound copies (A, D, conv weights) follow an in-place update (training in the same process)."""
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model(family)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))
    stepper = SSMGraphStepper(model, family, use_cuda_graph=False)
    with torch.inference_mode():
        before = stepper.prefill(ids)
    first = stepper._prefill
    with torch.no_grad():
        for block in model.backbone.layers:
            block.mixer.A_log.add_(0.5)
            block.mixer.conv1d.weight.mul_(1.5)
    with torch.inference_mode():
        after = stepper.prefill(ids)
        stepper.cache.reset()  # a fresh sequence for the generic forward too
        want = stepper._run(ids)
    assert stepper._prefill is not first and not torch.allclose(before, after)
    assert torch.allclose(after, want, atol=1e-5, rtol=1e-5)


def test_cpu_prefill_declines_what_its_kernels_do_not_take(monkeypatch):
    """Mamba-1 with channels not a multiple of 16, bf16 weights, or the reference path: the stepper's prefill
    runs `_run`, still equal to Hugging Face's own forward."""
    from transformers import MambaConfig, MambaForCausalLM

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    torch.manual_seed(0)
    model = MambaForCausalLM(MambaConfig(vocab_size=64, hidden_size=16, state_size=8, intermediate_size=40,
                                         num_hidden_layers=2, time_step_rank=4, conv_kernel=4)).eval()
    assert cpu_prefill.build(model, "mamba") is None
    ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(0))
    stepper = SSMGraphStepper(model, "mamba", use_cuda_graph=False)
    with torch.inference_mode():
        got = stepper.prefill(ids)
        want = model(ids).logits[:, -1]
    assert stepper._prefill is False and torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    small = tiny_model("mamba")
    assert cpu_prefill.build(small, "mamba") is not None and cpu_prefill.build(small, "transformer") is None
    assert cpu_prefill.build(small.to(torch.bfloat16), "mamba") is None
    monkeypatch.setenv("SSM_ARENA_KERNELS", "reference")
    assert cpu_prefill.build(small.float(), "mamba") is None


def steps_through(stepper, ids, steps=4):
    """Prefill, then `steps` greedy decode steps; returns the logits [B, steps + 1, V] and the final states."""
    logits = [stepper.prefill(ids)]
    for _ in range(steps):
        logits.append(stepper.step(logits[-1].argmax(-1)))
    return torch.stack(logits, 1), [t.clone() for t in stepper.cache.tensors()]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch", [pytest.param(1, id="B1"), pytest.param(3, id="B3")])
def test_cpu_decode_loop_equals_the_blocks_forward(family, batch, monkeypatch):
    """The CPU decode loop (cpu_decode: kernels bound once per prefill) against the stepper's own `_run`
    (module calls through ssm_fast) token by token; a second prefill of another batch rebinds it."""
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_model(family)
    ids = torch.randint(0, 64, (batch, 9), generator=torch.Generator().manual_seed(batch))
    looped = SSMGraphStepper(model, family, use_cuda_graph=False)
    plain = SSMGraphStepper(model, family, use_cuda_graph=False)
    plain.step = lambda tok: plain._run(tok.view(-1, 1))  # the same step without the loop
    with torch.inference_mode():
        for prompt in (ids, ids[:1, :5], ids):  # another batch and length in between: the loop is rebound
            got, got_state = steps_through(looped, prompt)
            assert isinstance(looped._loop, CPUDecodeLoop) and looped._loop.batch == prompt.shape[0]
            want, want_state = steps_through(plain, prompt)
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
            for g, w in zip(got_state, want_state, strict=True):
                assert torch.allclose(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_decode_loop_declines_what_its_kernels_do_not_take(family, monkeypatch):
    """The reference path: the loop declines and the step runs `_run`, still equal to Hugging Face's own full
    forward. bf16 weights: `build` declines (the bound kernels are fp32)."""
    monkeypatch.setenv("SSM_ARENA_KERNELS", "reference")
    model = tiny_model(family)
    ids = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(0))
    stepper = SSMGraphStepper(model, family, use_cuda_graph=False)
    with torch.inference_mode():
        logits, _ = steps_through(stepper, ids, steps=2)
        model_logits = model(torch.cat([ids, logits[:, :2].argmax(-1)], 1)).logits
    assert stepper._loop is False
    assert torch.allclose(logits[:, 1:], model_logits[:, -2:], atol=1e-4, rtol=1e-4)
    monkeypatch.setenv("SSM_ARENA_KERNELS", "cpu-chunked")
    assert cpu_decode.build(model, family, stepper.cache, 2) is not None
    assert cpu_decode.build(model.to(torch.bfloat16), family, stepper.cache, 2) is None
    assert cpu_decode.build(model.float(), family, stepper.cache, 3) is None  # state buffers of another batch
