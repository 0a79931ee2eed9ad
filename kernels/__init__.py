"""Triton kernels for the SSM scans, one op per file, each with a `*_ref` PyTorch reference:
selective_scan (Mamba-1 prefill), selective_state_update (decode, Mamba-1 and Mamba-2), ssd_chunk_scan
(Mamba-2 prefill), causal_conv1d (+ update), rms_norm (fused residual add / gated norm).
`kernels.dispatch` picks triton / reference / mamba-ssm per device; `kernels.launch` holds the per-vendor
launch configs; `kernels.aot` compiles everything ahead of time for AMD and NVIDIA targets."""
