"""`python -m backend kernel-bench`: time each SSM kernel on a GPU against the measured HBM copy bandwidth,
the PyTorch reference, Hugging Face's fallback and (when importable) mamba-ssm's Triton kernels.

Bandwidth ceiling: a device-to-device copy of a 2 GiB tensor (read + write), timed like the kernels.
Achieved GB/s counts each kernel's compulsory HBM traffic (inputs read once, outputs written once).
Times are medians of `triton.testing.do_bench`; slow baselines (reference, HF fallback) are timed once
after one warm-up (`slow_ms`). Records go to a JSONL file through `store.RecordWriter` (kind
"kernel_bench"); the last stdout line is a JSON summary.

    python -m backend kernel-bench --out results/kernels_h100.jsonl [--mamba-ssm DIR] [--sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
import types

import torch
import torch.nn.functional as F

from backend.bench import peer
from backend.device import synchronize
from backend.runinfo import run_meta
from kernels import causal_conv1d as conv
from kernels import channels_last as cl
from kernels import selective_scan as scan
from kernels import selective_state_update as ssu
from kernels import ssd_chunk_scan as ssd
from store import RecordWriter


def _import_mamba_ssm(folder: str | None):
    if not folder:
        return None
    sys.path.insert(0, folder)
    sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    try:
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception as e:
        print(f"warning: mamba-ssm from {folder} did not import ({e}); skipping it", file=sys.stderr)
        return None
    finally:
        sys.path.remove(folder)
    return types.SimpleNamespace(ssu=selective_state_update, ssd=mamba_chunk_scan_combined)


def bench(fn, rep_ms: int = 200) -> float:
    if not torch.cuda.is_available():  # --smoke on CPU
        return slow_ms(fn)
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=rep_ms, return_mode="median"))


def slow_ms(fn) -> float:
    fn()
    synchronize()
    t0 = time.perf_counter()
    fn()
    synchronize()
    return (time.perf_counter() - t0) * 1e3


def copy_bandwidth_gbps(dev: str = "cuda", n: int = 1 << 30) -> float:
    """Device copy of n bf16 elements (2 GiB by default): bytes read + written per second."""
    x = torch.empty(n, dtype=torch.bfloat16, device=dev)
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x), rep_ms=300)
    return 2 * n * 2 / (ms * 1e-3) / 1e9


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _hf_fn(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def scan_activations(batch: int, dim: int, seqlen: int, dstate: int, dev: str = "cuda"):
    """Random bf16 scan inputs in the layout the model passes: u, delta, z [batch, dim, seqlen] viewed from
    [batch, seqlen, dim] memory (channels contiguous); B, C [batch, dstate, seqlen] views of one
    [batch, seqlen, 2 * dstate] tensor (x_proj's output)."""
    u, dt, z = (torch.randn(batch, seqlen, dim, device=dev, dtype=torch.bfloat16).transpose(1, 2) for _ in range(3))
    BC = torch.randn(batch, seqlen, 2 * dstate, device=dev, dtype=torch.bfloat16)
    return u, dt, z, BC[..., :dstate].transpose(1, 2), BC[..., dstate:].transpose(1, 2)


def cases(m_ssm, slow: bool, dev: str = "cuda", smoke: bool = False, previous_scan=None, peer_ext=None):
    """Yield (op, shape label, our_fn, bytes, baselines{name: (fn, slow?)}, sweep hooks) per benchmark.
    previous_scan: another `selective_scan` (an earlier version of ours), timed as baseline "previous".
    peer_ext: mamba-ssm's CUDA scan forward (`backend.bench.peer.build`), timed as baseline "mamba-ssm-cuda"
    on the same values in its own layout (seqlen contiguous)."""

    bf = torch.bfloat16
    torch.manual_seed(0)
    # sizes: the issue's / the 130m models' shapes; --smoke shrinks them
    b, d, L, n, bs, H_list, b3, L3, H3, Lc = (8, 1536, 4096, 16, 16, ((24, 64, 128), (80, 64, 128)), 4, 4096, 24, 4096)
    if smoke:
        b, d, L, n, bs, H_list, b3, L3, H3, Lc = (1, 40, 20, 16, 2, ((3, 16, 32),), 1, 20, 3, 9)

    # Mamba-1 prefill scan at the four shapes of issue 15 (the 130m shape, the 1.4b shape at batch 16 and 1, and
    # a 790m-like shape at batch 64), in both layouts the kernel takes: channels contiguous ((batch, L, d)
    # memory viewed as (batch, d, L): what the model passes; labels without a suffix) and seqlen contiguous
    # (" len-contig", mamba-ssm's layout)
    A = -torch.rand(d, n, device=dev) - 0.1
    D, bias = torch.randn(d, device=dev), torch.randn(d, device=dev) * 0.1
    scan_shapes = [(b, d, L)] if smoke else [(b, d, L), (16, 4096, 2048), (1, 4096, 2048), (64, 2048, 2048)]
    hf_scan = _hf_fn("transformers.models.mamba.modeling_mamba", "mamba_selective_scan")
    for sb, sd, sL in scan_shapes:
        u, dt, z, B, C = scan_activations(sb, sd, sL, n, dev)
        sA, sD, sbias = (A, D, bias) if sd == d else (-torch.rand(sd, n, device=dev) - 0.1,
                                                      torch.randn(sd, device=dev), torch.randn(sd, device=dev) * 0.1)
        peer_args = None
        if peer_ext is not None:  # the same values in mamba-ssm's layout, converted once (not timed)
            peer_args = peer.prepare(u, dt, sA, B, C, sD, z, sbias, True)
        for layout in ("chan", "len"):
            if layout == "len":
                u, dt, z, B, C = (t.contiguous() for t in (u, dt, z, B, C))
            args = (u, dt, sA, B, C, sD, z, sbias, True)
            base = {}
            if previous_scan is not None:
                base["previous"] = (lambda args=args: previous_scan(*args), False)
            if peer_args is not None:
                base["mamba-ssm-cuda"] = (lambda pa=peer_args: peer.run(peer_ext, pa), False)
            if slow and sd == d and layout == "chan":
                base["reference"] = (lambda args=args: scan.selective_scan_ref(*args), True)
                if hf_scan is not None:
                    base["hf"] = (lambda args=args: hf_scan(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                                                            delta_softplus=True, return_last_state=True), True)
            yield ("selective_scan", f"B{sb} D{sd} L{sL} N{n} bf16" + (" len-contig" if layout == "len" else ""),
                   lambda args=args: scan.selective_scan(*args), nbytes(u, dt, z, u, B, C) + sb * sd * n * 4, base,
                   "scan")
            if layout == "len":  # the copy the scan makes of each seqlen-contiguous input (transpose_len)
                yield ("channels_last", f"B{sb} D{sd} L{sL} bf16", lambda u=u: cl.channels_last(u), 2 * nbytes(u),
                       {"torch": (lambda u=u: cl.channels_last_ref(u), False)}, None)
        del u, dt, z, B, C, peer_args
        if dev == "cuda":
            torch.cuda.empty_cache()

    # decode state update, Mamba-1 (130m shape) and Mamba-2 (130m and 2.7b shapes), batch 16
    st1 = torch.randn(bs, d, n, device=dev)
    x1, dt1, z1 = (torch.randn(bs, d, device=dev, dtype=bf) for _ in range(3))
    B1, C1 = torch.randn(bs, n, device=dev, dtype=bf), torch.randn(bs, n, device=dev, dtype=bf)
    hf_ssu = _hf_fn("transformers.models.mamba.modeling_mamba", "mamba_selective_state_update")
    base = {"reference": (lambda: ssu.selective_state_update_ref(st1, x1, dt1, A, B1, C1, D, z1, bias, True), False)}
    if hf_ssu is not None:
        base["hf"] = (lambda: hf_ssu(st1, x1, dt1, A, B1, C1, D, z=z1, dt_bias=bias, dt_softplus=True), False)
    if m_ssm is not None:
        base["mamba-ssm"] = (lambda: m_ssm.ssu(st1, x1, dt1, A, B1, C1, D=D, z=z1, dt_bias=bias, dt_softplus=True), False)
    yield ("selective_state_update", f"mamba1 B{bs} D{d} N{n} state fp32",
           lambda: ssu.selective_state_update(st1, x1, dt1, A, B1, C1, D, z1, bias, True),
           2 * nbytes(st1) + nbytes(x1, dt1, z1, x1, B1, C1), base, None)

    for H, P, N in H_list:
        st2 = torch.randn(bs, H, P, N, device=dev)
        x2 = torch.randn(bs, H, P, device=dev, dtype=bf)
        dt2 = torch.randn(bs, H, device=dev, dtype=bf)
        A2, D2, bias2 = -torch.rand(H, device=dev), torch.randn(H, device=dev), torch.randn(H, device=dev)
        B2, C2 = torch.randn(bs, 1, N, device=dev, dtype=bf), torch.randn(bs, 1, N, device=dev, dtype=bf)
        base = {"reference": (lambda st2=st2, x2=x2, dt2=dt2, A2=A2, B2=B2, C2=C2, D2=D2, bias2=bias2:
                              ssu.selective_state_update_ref(st2, x2, dt2, A2, B2, C2, D2, None, bias2, True), False)}
        hf2 = _hf_fn("transformers.models.mamba2.modeling_mamba2", "mamba2_selective_state_update")
        exp = dict(A=A2[:, None, None].expand(H, P, N), dt=dt2[:, :, None].expand(-1, -1, P),
                   D=D2[:, None].expand(H, P), bias=bias2[:, None].expand(H, P))
        if hf2 is not None:
            base["hf"] = (lambda st2=st2, x2=x2, B2=B2, C2=C2, e=exp, hf2=hf2:
                          hf2(st2, x2, e["dt"], e["A"], B2, C2, e["D"], dt_bias=e["bias"], dt_softplus=True), False)
        if m_ssm is not None:
            base["mamba-ssm"] = (lambda st2=st2, x2=x2, B2=B2, C2=C2, e=exp:
                                 m_ssm.ssu(st2, x2, e["dt"], e["A"], B2, C2, D=e["D"], dt_bias=e["bias"],
                                           dt_softplus=True), False)
        yield ("selective_state_update", f"mamba2 B{bs} H{H} P{P} N{N} state fp32",
               lambda st2=st2, x2=x2, dt2=dt2, A2=A2, B2=B2, C2=C2, D2=D2, bias2=bias2:
               ssu.selective_state_update(st2, x2, dt2, A2, B2, C2, D2, None, bias2, True),
               2 * nbytes(st2) + nbytes(x2, x2, dt2, B2, C2), base, None)

    # Mamba-2 chunked scan (130m shape), batch 4, 4096 tokens
    H, P, G, N = H3, H_list[0][1], 1, H_list[0][2]
    x3 = torch.randn(b3, L3, H, P, device=dev, dtype=bf)
    dt3 = torch.randn(b3, L3, H, device=dev, dtype=bf)
    A3, D3, bias3 = -torch.rand(H, device=dev) - 0.1, torch.randn(H, device=dev), torch.randn(H, device=dev) * 0.1
    BC3 = torch.randn(b3, L3, 2 * G, N, device=dev, dtype=bf)
    B3, C3 = BC3[:, :, :G], BC3[:, :, G:]
    base = {}
    if m_ssm is not None:
        base["mamba-ssm"] = (lambda: m_ssm.ssd(x3, dt3, A3, B3, C3, 256, D=D3, dt_bias=bias3, dt_softplus=True,
                                               return_final_states=True), False)
    hf3 = _hf_fn("transformers.models.mamba2.modeling_mamba2", "mamba2_chunk_scan")
    if slow and hf3 is not None:
        base["hf"] = (lambda: hf3(x3, dt3, A3, B3, C3, chunk_size=256, D=D3, dt_bias=bias3, dt_softplus=True,
                                  return_final_states=True), True)
    if slow:
        base["reference"] = (lambda: ssd.ssd_chunk_scan_ref(x3, dt3, A3, B3, C3, D3, None, bias3, True), True)
    yield ("ssd_chunk_scan", f"B{b3} L{L3} H{H} P{P} N{N} bf16",
           lambda: ssd.ssd_chunk_scan(x3, dt3, A3, B3, C3, D3, None, bias3, True),
           nbytes(x3, x3, dt3, BC3) + b3 * H * P * N * 4, base, "ssd")

    # causal conv1d prefill (position-major input, as HF passes it) and its decode update
    xc = torch.randn(b, Lc, d, device=dev, dtype=bf).transpose(1, 2)
    w, cb = torch.randn(d, 4, device=dev), torch.randn(d, device=dev)
    base = {"reference": (lambda: conv.causal_conv1d_ref(xc, w, cb, "silu"), False),
            "hf": (lambda: F.silu(F.conv1d(xc, w[:, None, :].to(bf), cb.to(bf), padding=3, groups=d)[..., :Lc]), False)}
    yield ("causal_conv1d", f"B{b} D{d} L{Lc} K4 bf16", lambda: conv.causal_conv1d(xc, w, cb, "silu"), 2 * nbytes(xc),
           base, None)
    cs = torch.randn(4 * bs, d, 4, device=dev, dtype=bf)
    xu = torch.randn(4 * bs, d, device=dev, dtype=bf)
    base = {"reference": (lambda: conv.causal_conv1d_update_ref(xu, cs, w, cb, "silu"), False)}
    yield ("causal_conv1d_update", f"B{4 * bs} D{d} S4 bf16", lambda: conv.causal_conv1d_update(xu, cs, w, cb, "silu"),
           2 * nbytes(cs) + 2 * nbytes(xu), base, None)


def sweep_configs(kind: str):
    from kernels.launch import LaunchConfig, scan_config

    if kind == "scan":
        # the NVIDIA default first, then one change at a time: min_programs 0 never splits the sequence,
        # split_below 0 splits below min_programs; par_len () splits seqlen-contiguous inputs too; len_tile 0
        # copies them (transpose_len) instead of reading them in place, 8 reads longer tiles. prefetch 1 (0 and 2
        # were slower at every shape) and no POLY (exps on the FMA pipes: slower at every shape on an H100,
        # results/kernels_h100_4.jsonl)
        d, r = scan_config(16, "cuda"), dataclasses.replace
        return [d, r(d, min_programs=0, split_below=0), r(d, split_below=0), r(d, min_programs=4224, chunk_min=128),
                r(d, min_programs=16896, chunk_min=32), r(d, bc_fp32=False), r(d, bc_fp32_split=True),
                r(d, transpose_len=False), r(d, par_len=()), r(d, par_len=(32, 16, 2)), r(d, len_tile=0),
                r(d, len_tile=8), r(d, num_warps=4, block_d=128, min_programs=4224, split_below=264),
                r(d, num_warps=1, block_d=32, min_programs=0, split_below=0)]
    if kind == "ssd":
        return [LaunchConfig(num_warps=w, block_m=q, block_p=p, block_n=128)
                for q, p, w in ((32, 32, 4), (16, 32, 4), (32, 64, 8), (32, 16, 4))]
    return []


def run(args: argparse.Namespace) -> int:
    gpu = torch.cuda.is_available()
    if not gpu and not args.smoke:
        print("kernel-bench needs a CUDA or ROCm GPU; run it on a GPU machine (or --smoke on CPU).", file=sys.stderr)
        return 2
    dev = "cuda" if gpu else "cpu"
    # Hugging Face picks each function's implementation when its modeling module is imported (hub kernel,
    # then the mamba-ssm package, then torch): import them before mamba-ssm is importable, so "hf" below
    # is the torch fallback every user without mamba-ssm gets, not mamba-ssm under another name.
    for mod in ("transformers.models.mamba.modeling_mamba", "transformers.models.mamba2.modeling_mamba2"):
        importlib.import_module(mod)
    m_ssm = _import_mamba_ssm(args.mamba_ssm)
    device = torch.cuda.get_device_name() if gpu else "cpu (smoke)"
    writer = RecordWriter(args.out)
    run_id = writer.start_run("kernel_bench", {"sweep": args.sweep, "mamba_ssm": bool(m_ssm), "smoke": args.smoke,
                                               "mamba_ssm_cuda": getattr(args, "mamba_ssm_cuda", None)}, run_meta())
    ceiling = copy_bandwidth_gbps(dev, n=1 << (16 if args.smoke else 30))
    print(f"{device}: copy bandwidth {ceiling:.0f} GB/s")
    common = dict(device=device, family="kernel", path="triton", batch=None)  # our kernels, called directly
    rows = [{**common, "model": "hbm_copy", "metric": "copy_gbps", "value": ceiling, "dtype": "bfloat16"}]
    summary = {"device": device, "copy_gbps": round(ceiling, 1)}
    previous = _load_previous_scan(args.previous_scan) if args.previous_scan else None
    peer_ext = None
    if getattr(args, "mamba_ssm_cuda", None):
        t0 = time.perf_counter()
        peer_ext = peer.build(args.mamba_ssm_cuda)
        print(f"built mamba-ssm's CUDA scan forward in {time.perf_counter() - t0:.0f} s (peer, rows 'mamba-ssm-cuda')")
    ops = set(args.ops.split(",")) if getattr(args, "ops", None) else None
    writer.add_measurements(run_id, rows)
    sweeps = []
    for op, shape, fn, nb, baselines, sweep_kind in cases(m_ssm, slow=not args.no_slow, dev=dev, smoke=args.smoke,
                                                          previous_scan=previous, peer_ext=peer_ext):
        if ops is not None and op not in ops:
            continue
        rows = []  # written per case: a run cut short by the GPU call's time limit keeps what it measured
        ms = bench(fn)
        gbps = nb / (ms * 1e-3) / 1e9
        row = {**common, "model": op, "metric": "kernel_ms", "value": ms, "shape": shape, "bytes": nb,
               "gbps": gbps, "pct_of_copy": 100 * gbps / ceiling, "dtype": "bfloat16", "repeats": None}
        peers = []
        for name, (bfn, is_slow) in baselines.items():
            try:
                if name in ("previous", "mamba-ssm-cuda", "torch"):  # same values: the outputs must agree first
                    row[f"{name.replace('-', '_')}_max_rel_err"] = _max_rel_err(fn(), bfn())
                bms = slow_ms(bfn) if is_slow else bench(bfn)
            except Exception as e:  # e.g. out of memory in a fallback: record why, keep going
                print(f"  {op} baseline {name} failed: {e}", file=sys.stderr)
                row[f"{name}_error"] = str(e)[:200]
                continue
            row[f"{name}_ms"] = bms
            row[f"speedup_vs_{name.replace('-', '_')}"] = bms / ms
            if name == "mamba-ssm-cuda":  # a peer's own row, labelled with its path: never our number
                pg = nb / (bms * 1e-3) / 1e9
                peers.append({**common, "path": "mamba-ssm-cuda", "model": op, "metric": "peer_ms", "value": bms,
                              "shape": shape, "bytes": nb, "gbps": pg, "pct_of_copy": 100 * pg / ceiling,
                              "dtype": "bfloat16", "ours_ms": ms})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rows.append(row)
        rows += peers
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                          if k not in common}))
        summary[f"{op} {shape}"] = {"ms": round(ms, 4), "pct_of_copy": round(row["pct_of_copy"], 1)}
        if args.sweep and sweep_kind:
            sweeps.append((op, shape, fn, nb, sweep_kind))
        writer.add_measurements(run_id, rows)
    # the sweeps after every default and peer row: a run cut short by the call's time limit keeps those first
    for op, shape, fn, nb, sweep_kind in sweeps:
        writer.add_measurements(run_id, _sweep(op, shape, fn, nb, ceiling, sweep_kind, common))
    writer.finish_run(run_id, "completed", summary)
    print(json.dumps(summary))
    return 0


def _load_previous_scan(path: str):
    """`selective_scan` from another copy of kernels/selective_scan.py, imported under its own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("previous_selective_scan", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--previous-scan: cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # a dataclass in the file (an inlined launch config) looks its module up there
    spec.loader.exec_module(mod)
    return mod.selective_scan


def _max_rel_err(ours, theirs) -> float:
    """Largest |a - b| / max|b| over the tensors of two (y, state) results."""
    return max(float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))
               for a, b in zip(ours, theirs, strict=True))


def _sweep(op, shape, fn, nb, ceiling, kind, common) -> list[dict]:
    """Time alternative launch configs by swapping the config getter the wrapper reads."""
    module, attr = (scan, "scan_config") if kind == "scan" else (ssd, "ssd_config")
    original = getattr(module, attr)
    rows = []
    try:
        for cfg in sweep_configs(kind):
            setattr(module, attr, lambda *a, cfg=cfg, **k: cfg)
            try:
                ms = bench(fn, rep_ms=100)
            except Exception as e:
                print(f"  sweep {cfg}: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
                continue
            gbps = nb / (ms * 1e-3) / 1e9
            rows.append({**common, "model": op, "metric": "sweep_ms", "value": ms, "shape": shape,
                         "config": repr(cfg), "gbps": gbps, "pct_of_copy": 100 * gbps / ceiling})
            print(f"  sweep {op} {cfg}: {ms:.4f} ms ({100 * gbps / ceiling:.0f}% of copy)")
    finally:
        setattr(module, attr, original)
    return rows
