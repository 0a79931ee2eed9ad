"""GPU checks of the transformer's CUDA-graph stepper (skipped without CUDA)."""

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: E402

from backend.generation.tf_stepper import StaticGraphStepper  # noqa: E402


@pytest.mark.parametrize("batch", [1, 3])
def test_graph_stepper_matches_eager_static_steps(batch):
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=512, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=512, rotary_pct=0.25, max_position_embeddings=4096)
    model = GPTNeoXForCausalLM(cfg).cuda().to(torch.bfloat16).eval()
    model.set_attn_implementation("sdpa")
    ids = torch.randint(0, 512, (batch, 100), device="cuda")
    graph = StaticGraphStepper(model, max_new_tokens=8, use_cuda_graph=True)
    eager = StaticGraphStepper(model, max_new_tokens=8, use_cuda_graph=False)
    assert graph.path.endswith("+cudagraph")
    lg, le = graph.prefill(ids), eager.prefill(ids)
    torch.testing.assert_close(lg.float(), le.float(), atol=2e-2, rtol=2e-2)  # not a warm-up step's logits
    for _ in range(12):  # past the reserved 8: exercises growth and re-capture
        tok = le.argmax(-1)
        lg, le = graph.step(tok), eager.step(tok)
        torch.testing.assert_close(lg.float(), le.float(), atol=2e-2, rtol=2e-2)
    # a second prompt reuses the captured graph
    ids2 = torch.randint(0, 512, (batch, 60), device="cuda")
    lg, le = graph.prefill(ids2), eager.prefill(ids2)
    torch.testing.assert_close(lg.float(), le.float(), atol=2e-2, rtol=2e-2)
    for _ in range(4):
        tok = le.argmax(-1)
        lg, le = graph.step(tok), eager.step(tok)
        torch.testing.assert_close(lg.float(), le.float(), atol=2e-2, rtol=2e-2)
