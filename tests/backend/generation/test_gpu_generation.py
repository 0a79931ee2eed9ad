"""The decode loop on a CUDA / ROCm GPU (skipped on CPU): same greedy tokens as HF generate(), GPU memory
metrics, registered GPU steppers picked up, bf16 by default."""

import pytest
import torch

from backend.generation.interface import GenSettings
from backend.models import registry
from backend.models.loading import load_generator

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")]
PROMPT = "Question: what is 12 plus 30? Answer:"


@pytest.mark.parametrize("arch", ["mamba", "mamba2", "llama", "gpt_neox"])
def test_gpu_greedy_matches_hf_generate_fp32(tiny_dirs, arch):
    spec = registry.ModelSpec(f"gpu-{arch}", registry.inspect_folder(tiny_dirs[arch])[0], "local",
                              str(tiny_dirs[arch]), dtype="float32")
    g = load_generator(spec, device="cuda")
    res = g.generate(PROMPT, GenSettings(max_new_tokens=24, stop_at_eos=False))
    ids = torch.tensor([g.encode(PROMPT)], device="cuda")
    ref = g.model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=None,
                           min_new_tokens=24)[0, ids.shape[1]:].tolist()
    assert res.token_ids == ref
    m = res.metrics
    assert m.peak_mem_kind == "cuda_allocated" and m.peak_mem_bytes > 0
    assert m.device == torch.cuda.get_device_name() and m.dtype == "float32"
    assert 0 < m.prefill_ms <= m.ttft_ms <= m.total_ms and m.tpot_ms > 0
    assert m.cache_bytes > 0 and m.path == g.info.path
    again = g.generate(PROMPT, GenSettings(max_new_tokens=24, stop_at_eos=False))
    assert again.token_ids == res.token_ids  # a reused stepper (graphs, static caches) starts clean


def test_gpu_auto_dtype_is_bf16_and_stepper_path(tiny_dirs):
    spec = registry.ModelSpec("gpu-llama-auto", "transformer", "local", str(tiny_dirs["llama"]))
    g = load_generator(spec, device="auto")
    assert g.info.dtype == "bfloat16"
    try:
        import backend.generation.tf_stepper  # noqa: F401
    except ImportError:
        assert g.info.path == "sdpa"
    else:  # the transformer's best standard path: static cache + CUDA graph
        assert "static" in g.info.path
    res = g.generate(PROMPT, GenSettings(max_new_tokens=300, stop_at_eos=False))  # past the default reserve
    assert res.metrics.new_tokens == 300 and res.metrics.dtype == "bfloat16"
