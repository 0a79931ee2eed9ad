"""The hybrid (Hugging Face BambaForCausalLM) on the CPU path: its bound prefill (cpu_prefill.build_hybrid) and
decode loop (cpu_decode.build_hybrid), which `steppers.EagerStepper` runs in place of the model's forward when its
Mamba layers run our CPU kernels, against that forward: logits, the cache left behind, rebinding, and what they
decline."""

from __future__ import annotations

import pytest
import torch

from tests.backend.generation.test_hybrid_fast import (
    BINDING,
    KINDS,
    eager_steps,
    ids_for,
    mixers,
    tiny_hybrid,
)


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_decode_loop_equals_the_models_forward(kind, monkeypatch):
    """A hybrid's CPU decode loop (cpu_decode.build_hybrid: Mamba-2 steps bound to the cache's state tensors,
    attention through Hugging Face's module on the same cache) against the model's own forward step by step, for
    two batch sizes in turn (the loop is rebound after each prefill), and the cache it leaves behind."""
    from backend.generation import ssm_fast
    from backend.generation.cpu_decode import HybridDecodeLoop
    from backend.generation.steppers import EagerStepper

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid(**kind)
    ssm_fast.enable(model)
    looped, plain = EagerStepper(model, "hybrid"), EagerStepper(model, "hybrid")
    for ids in (ids_for(14, seed=3, batch=2), ids_for(9, seed=4, batch=1)):
        got = [looped.prefill(ids[:, :6])]
        want = [plain.prefill(ids[:, :6])]
        plain._loop = False  # the same steps through the model's forward
        for t in range(6, ids.shape[1]):
            got.append(looped.step(ids[:, t]))
            want.append(plain.step(ids[:, t]))
        assert isinstance(looped._loop, HybridDecodeLoop) and looped._loop.batch == ids.shape[0]
        got, want = torch.stack(got, 1), torch.stack(want, 1)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
        assert looped.pos == plain.pos == ids.shape[1] and looped.cache_bytes() == plain.cache_bytes()


@pytest.mark.parametrize("kind", [*KINDS, BINDING])
@pytest.mark.parametrize("batch,length", [pytest.param(1, 1, id="B1-L1"), pytest.param(2, 3, id="B2-L3-below-conv"),
                                          pytest.param(2, 21, id="B2-L21")])
def test_cpu_prefill_equals_the_models_forward(kind, batch, length, monkeypatch):
    """A hybrid's bound CPU prefill (cpu_prefill.build_hybrid) against the model's own forward: the last logits,
    and the cache it leaves (the same decode steps follow from it as from the forward's cache)."""
    from backend.generation import ssm_fast
    from backend.generation.cpu_prefill import HybridPrefill
    from backend.generation.steppers import EagerStepper

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid(**kind)
    ids = ids_for(length + 3, seed=length, batch=batch)
    with torch.no_grad():
        full = model(ids[:, :length]).logits[:, -1]
    ssm_fast.enable(model)
    bound, plain = EagerStepper(model, "hybrid"), EagerStepper(model, "hybrid")
    plain._prefill = plain._loop = False  # the model's forward for the prompt and the steps
    got, want = [bound.prefill(ids[:, :length])], [plain.prefill(ids[:, :length])]
    plain._loop = False
    assert isinstance(bound._prefill, HybridPrefill)
    assert torch.allclose(got[0], full, atol=1e-5, rtol=1e-5), (got[0] - full).abs().max()
    for t in range(length, length + 3):
        got.append(bound.step(ids[:, t]))
        want.append(plain.step(ids[:, t]))
    got, want = torch.stack(got, 1), torch.stack(want, 1)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
    assert bound.pos == plain.pos == length + 3 and bound.cache_bytes() == plain.cache_bytes()


def test_cpu_prefill_rebinds_after_a_parameter_changes(monkeypatch):
    from backend.generation import ssm_fast
    from backend.generation.steppers import EagerStepper

    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    model = tiny_hybrid()
    ssm_fast.enable(model)
    stepper = EagerStepper(model, "hybrid")
    ids = ids_for(9)
    before, first = stepper.prefill(ids), stepper._prefill
    with torch.no_grad():
        for mixer in mixers(model):
            mixer.A_log.add_(0.5)
            mixer.conv1d.weight.mul_(1.5)
        want = model(ids).logits[:, -1]
    after = stepper.prefill(ids)
    assert stepper._prefill is not first and not torch.allclose(before, after)
    assert torch.allclose(after, want, atol=1e-5, rtol=1e-5)


def test_cpu_decode_loop_declines_what_it_does_not_take(monkeypatch):
    """The reference path, bf16 weights, another MLP activation: no bound prefill or decode loop, and the steps
    are the model's forward."""
    from backend.generation import cpu_decode, cpu_prefill

    monkeypatch.setenv("SSM_ARENA_KERNELS", "reference")
    model = tiny_hybrid()
    got, want, stepper = eager_steps(model, ids_for(10), cut=7)
    assert stepper._loop is None and stepper._prefill is None  # never bound on the reference path
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    monkeypatch.setenv("SSM_ARENA_KERNELS", "cpu-chunked")
    assert cpu_prefill.build_hybrid(model) is not None
    assert cpu_decode.build_hybrid(model, stepper.cache, 2) is not None
    assert cpu_decode.build_hybrid(model, stepper.cache, 3) is None  # the states hold 2 sequences
    model.config.hidden_act = "gelu"
    assert cpu_decode.build_hybrid(model, stepper.cache, 2) is None and cpu_prefill.build_hybrid(model) is None
    model.config.hidden_act = "silu"
    assert cpu_decode.build_hybrid(model.to(torch.bfloat16), stepper.cache, 2) is None
    assert cpu_prefill.build_hybrid(model) is None
