"""Training-op benchmark: forward + backward of one Mamba-2 mixer in training mode, Hugging Face's
pure-PyTorch path against ours (`backend.training.ssm_ops`, built on `kernels.ssd_train.ssd_chunked`), plus
`ssd_chunked` alone. The last stdout line is a JSON record.

    python -m backend kernel-bench --ssd-train [--device cuda] [--batch 16 --seqlen 1024 ...]
"""

from __future__ import annotations

import json
import time

import torch
from transformers import Mamba2Config
from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

from backend.device import resolve_device, synchronize
from backend.training.ssm_ops import enable_training
from kernels.ssd_train import _random_problem, self_check, ssd_chunked


def run(args) -> dict:
    """Forward + backward of one Mamba-2 mixer in training mode: Hugging Face's pure-PyTorch forward vs ours,
    plus ssd_chunked alone."""
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    device = resolve_device(args.device)
    H, P, N = args.heads, args.headdim, args.dstate
    cfg = Mamba2Config(hidden_size=H * P // 2, num_heads=H, head_dim=P, expand=2, n_groups=1, state_size=N,
                       num_hidden_layers=1, chunk_size=args.hf_chunk, conv_kernel=4)
    torch.manual_seed(0)
    mixer = Mamba2Mixer(cfg, layer_idx=0).to(device).train()
    hs = torch.randn(args.batch, args.seqlen, cfg.hidden_size, device=device, requires_grad=True)

    def sync():
        synchronize(device)

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            fn()
        sync()
        return (time.perf_counter() - t0) / args.iters * 1e3

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step_mixer():
        with autocast:
            out = mixer(hs)
        out.float().sum().backward()

    record = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "batch": args.batch, "seqlen": args.seqlen, "heads": H, "headdim": P, "dstate": N,
              "chunk": args.chunk, "hf_chunk": args.hf_chunk, "bf16_autocast": args.bf16,
              "flush_denormal": bool(args.flush_denormal), "torch": torch.__version__,
              "transformers": __import__("transformers").__version__}
    record["hf_mixer_ms"] = timed(step_mixer)
    enable_training(torch.nn.ModuleList([mixer]), kinds=("mamba2",))
    record["ours_mixer_ms"] = timed(step_mixer)
    prob = _random_problem(args.batch, args.seqlen, H, P, 1, N, device, with_z=False)
    leaves = {k: v.requires_grad_() for k, v in prob.items() if v is not None}
    gy = torch.randn_like(leaves["x"])

    def step_ssd():
        (ssd_chunked(**leaves, chunk_size=args.chunk) * gy).sum().backward()

    record["ssd_chunked_ms"] = timed(step_ssd)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step_ssd()
        sync()
        record["ssd_chunked_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    record["speedup_mixer"] = record["hf_mixer_ms"] / record["ours_mixer_ms"]
    record["self_check"] = self_check(device)
    print(json.dumps(record))
    return record
