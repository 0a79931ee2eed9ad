"""The CUDA-graph SSM stepper on a real GPU: graph replay equals eager decode and the full forward."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")]


@pytest.mark.parametrize("family", ["mamba", "mamba2"])
def test_graph_stepper_matches_full_forward(family):
    from backend.generation import ssm_fast
    from backend.generation.ssm_stepper import SSMGraphStepper, factory
    from tests.backend.generation.test_ssm_fast import ids_for, tiny_model

    model = tiny_model(family).cuda()
    ids = ids_for(length=13).cuda()
    with torch.no_grad():
        hf_full = model(ids).logits
    assert ssm_fast.enable(model) == "triton"
    stepper = factory(model, family, "cuda")
    assert isinstance(stepper, SSMGraphStepper) and stepper.path == "triton+cudagraph"
    for _ in range(2):  # the second prefill reuses the buffers and the captured graph
        got = [stepper.prefill(ids[:, :8])] + [stepper.step(ids[:, t]) for t in range(8, 13)]
        got = torch.stack(got, dim=1)
        assert torch.allclose(got, hf_full[:, 7:], atol=2e-3, rtol=1e-3), (got - hf_full[:, 7:]).abs().max()
