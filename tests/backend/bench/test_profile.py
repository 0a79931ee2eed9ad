"""bench-profile's grouping of GPU kernels into categories (the profiling itself needs a GPU: test_gpu.py)."""

import pytest

from backend.bench.profile import categorize, group


@pytest.mark.parametrize("name, category", [
    ("_selective_scan_kernel", "scan"), ("_chunk_state_kernel", "scan"), ("_ssd_chunk_scan_kernel", "scan"),
    ("_channels_last_kernel", "scan"), ("_causal_conv1d_kernel", "conv"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"), ("nvjet_hsh_128x256_64x4_2x1_v_bz_TNT", "matmul"),
    ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4>>", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"), ("_rms_norm_kernel", "norm"),
    ("void at::native::vectorized_layer_norm_kernel<c10::BFloat16, float>", "norm"),
    ("void at::native::elementwise_kernel<128, 2>", "other")])
def test_kernels_fall_in_their_category(name, category):
    assert categorize(name) == category


def test_group_sums_times_shares_and_launches():
    g = group([("_selective_scan_kernel", 3000.0, 24), ("sm90_xmma_gemm_a", 4000.0, 96), ("nvjet_b", 2000.0, 48),
               ("elementwise_kernel", 1000.0, 200)])
    assert g["scan"]["ms"] == pytest.approx(3.0) and g["scan"]["share"] == pytest.approx(0.3)
    assert g["matmul"]["ms"] == pytest.approx(6.0) and g["matmul"]["launches"] == 144
    assert g["matmul"]["top"][0] == ["sm90_xmma_gemm_a", 4.0]
    assert sum(v["share"] for v in g.values()) == pytest.approx(1.0)
    assert group([]) == {}
