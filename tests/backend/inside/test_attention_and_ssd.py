"""backend.inside.attention (attention maps through eager attention, the model switched back afterwards) and
backend.inside.ssd (one SSD layer three ways agreeing in fp32 on odd lengths)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from backend.inside import attention, ssd


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_attention_rows_sum_to_one_are_causal_and_the_model_is_switched_back(tiny_dirs, arch):
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch]).eval()
    before = model.config._attn_implementation
    ids = torch.randint(4, 300, (1, 29), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits_before = model(input_ids=ids).logits
    maps, impl = attention.attention_maps(model, ids)
    assert impl == before and model.config._attn_implementation == before
    assert maps.shape == (model.config.num_hidden_layers, 29, 29) and maps.dtype == "float32"
    assert abs(maps.sum(-1) - 1).max() < 1e-5  # a softmax per query (averaging heads keeps that)
    assert (maps[:, torch.triu_indices(29, 29, 1)[0], torch.triu_indices(29, 29, 1)[1]] == 0).all()  # causal
    assert (maps[:, 0, 0] == pytest.approx(1.0))
    assert maps[:, -1].std() > 0  # not uniform: the weights come from the model, not a placeholder
    with torch.inference_mode():  # eager and the model's own implementation compute the same function
        torch.testing.assert_close(model(input_ids=ids).logits, logits_before, rtol=1e-4, atol=1e-4)


def test_attention_is_switched_back_after_an_error(tiny_dirs):
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).eval()
    before = model.config._attn_implementation
    with pytest.raises(RuntimeError), attention.eager_attention(model):
        assert model.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert model.config._attn_implementation == before


def _inputs(L: int, H: int = 3, P: int = 5, N: int = 7, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    delta = torch.nn.functional.softplus(torch.randn(L, H, generator=g, dtype=torch.float64) - 1)
    A = -torch.rand(H, generator=g, dtype=torch.float64) * 3
    xbar = delta[..., None] * torch.randn(L, H, P, generator=g, dtype=torch.float64)
    B, C = (torch.randn(L, H, N, generator=g, dtype=torch.float64) for _ in range(2))
    return [t.to(dtype) for t in (xbar, delta * A, B, C)]


@pytest.mark.parametrize("L", [1, 7, 33, 97])
@pytest.mark.parametrize("chunk", [8, 16])
def test_three_ssd_forms_agree_in_fp32_on_odd_lengths(L, chunk):
    agree = ssd.agreement(*_inputs(L), chunk=chunk)
    assert set(agree) == {"chunked", "quadratic", "chunked state", "quadratic state"}
    assert max(agree.values()) < 2e-6, agree  # fp32 rounding only (float64 below agrees to ~1e-15)
    agree64 = ssd.agreement(*_inputs(L, dtype=torch.float64), chunk=chunk)
    assert max(agree64.values()) < 1e-12, agree64


def test_the_forms_compute_the_recurrence_not_each_other():
    """A hand-written two-token case: y_1 = C_1 . (a_1 B_0 xbar_0 + B_1 xbar_1)."""
    xbar = torch.tensor([[[2.0]], [[3.0]]])  # (L=2, H=1, P=1)
    log_a = torch.log(torch.tensor([[0.5], [0.25]]))
    B = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    C = torch.tensor([[[1.0, 1.0]], [[1.0, 2.0]]])
    for form in ssd.FORMS:
        y, h = ssd.run(form, xbar, log_a, B, C, chunk=1 if form == "chunked" else 64)
        assert y.flatten().tolist() == pytest.approx([2.0, 0.25 * 2.0 + 2 * 3.0]), form
        assert h.flatten().tolist() == pytest.approx([0.5, 3.0]), form
    with pytest.raises(ValueError, match="unknown SSD form"):
        ssd.run("fft", xbar, log_a, B, C)


def test_timings_have_one_row_per_length_and_form():
    rows = ssd.timings(*_inputs(40), lengths=[9, 40], chunk=8, repeats=1)
    assert [(r["length"], r["form"]) for r in rows] == [(n, f) for n in (9, 40) for f in ssd.FORMS]
    assert all(r["ms"] > 0 for r in rows)
