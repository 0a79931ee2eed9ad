"""Ahead-of-time compile every kernel, at the configurations the dispatcher uses, for AMD and NVIDIA
targets, on a machine with no GPU; read register, spill, shared-memory/LDS and occupancy figures.

Targets: ("hip", "gfx90a", 64) MI210/MI250, ("hip", "gfx942", 64) MI300X, ("cuda", 80, 32) A100,
("cuda", 90, 32) H100. Shapes are those of mamba-130m (d_inner 1536, N 16) and mamba2-130m (head_dim 64,
N 128, 24 heads); block sizes and num_warps come from `kernels/launch.py` for the target's vendor.

AMD figures come from the AMDGCN metadata (.vgpr_count, .sgpr_count, .vgpr_spill_count,
.sgpr_spill_count, .group_segment_fixed_size = LDS bytes, "; Occupancy:" waves per SIMD). NVIDIA
figures come from running Triton's bundled `ptxas -v` on the PTX (registers, spill stores/loads) and
from the kernel metadata (shared bytes). `spills` counts spills to memory: NVIDIA spill stores + loads;
AMD VGPR spills + scratch bytes. AMD SGPR spills land in VGPR lanes, not memory: shown, not counted.

`python -m backend kernel-aot [--out FILE.jsonl] [--targets hip:gfx90a,cuda:90]` prints the table.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from kernels import causal_conv1d as conv
from kernels import channels_last as cl
from kernels import launch
from kernels import rms_norm as norm
from kernels import selective_scan as scan
from kernels import selective_scan_len as scan_len
from kernels import selective_scan_par as scan_par
from kernels import selective_state_update as ssu
from kernels import ssd_chunk_scan as ssd

TARGETS = (("hip", "gfx90a", 64), ("hip", "gfx942", 64), ("cuda", 80, 32), ("cuda", 90, 32))


@dataclass
class Spec:
    """One kernel at one configuration: pointer dtypes, constexpr flags, and a launch-config getter."""
    op: str
    variant: str
    kernel: object
    ptr_dtypes: dict  # arg name -> triton dtype string ("bf16", "fp32", ...); unlisted pointers: fp32
    flags: dict  # constexpr flags that do not depend on the target
    blocks: object  # target("cuda"|"hip") -> (dict of block constexprs, num_warps)
    notes: str = ""
    extra: dict = field(default_factory=dict)
    # integer args that are 1 in the layout the model passes: Triton specializes an int argument equal to 1
    # into a constant at launch, so they are compiled as the constant 1 here too (contiguity = vector loads)
    ones: tuple = ()
    # integer args that are NOT multiples of 16 in practice; every other pointer and int is compiled as a
    # multiple of 16 (bytes / elements), as Triton specialises them at launch for these shapes (see `_attrs`)
    nodiv: tuple = ()


def specs() -> list[Spec]:
    import triton.language as tl


    def ssu_blocks(dstate, dim, tied):
        def f(t):
            c = launch.ssu_config(dstate, dim, tied, t)
            return {"BLOCK_M": c.block_m, "BLOCK_N": c.block_n}, c.num_warps
        return f

    def scan_blocks(t):
        c = launch.scan_config(16, t)
        return {"BLOCK_D": c.block_d, "BLOCK_N": c.block_n, "PREFETCH": c.prefetch, "POLY": c.poly,
                "EVEN_D": 1536 % c.block_d == 0, "EVEN_N": c.block_n == 16}, c.num_warps

    def scan_par_blocks(t):
        bl, bd, nw = launch.scan_config(16, t).par_len or (64, 16, 4)  # AMD does not take it (no par_len): NVIDIA's
        return {"BLOCK_L": bl, "BLOCK_D": bd, "BLOCK_N": 16}, nw

    def scan_len_blocks(t):
        c = launch.scan_config(16, t)
        return {"BLOCK_D": c.block_d, "BLOCK_N": 16, "P": c.len_tile or 8}, c.num_warps

    def ssd_blocks(t):
        c = launch.ssd_config(64, 128, t)
        return {"BLOCK_Q": c.block_m, "BLOCK_P": c.block_p, "BLOCK_N": c.block_n}, c.num_warps

    def conv_blocks(t):
        c = launch.conv_config(t)
        return {"BLOCK_L": c.block_l, "BLOCK_D": c.block_d}, c.num_warps

    def conv_update_blocks(t):
        c = launch.conv_update_config(t)
        return {"BLOCK_D": c.block_d}, c.num_warps

    act = dict.fromkeys(("u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr", "x_ptr", "dt_ptr"), "bf16")
    scan_ones = ("s_u_d", "s_dt_d", "s_B_n", "s_C_n", "s_z_d", "s_o_d")  # channels / states contiguous (ssm_fast)
    return [
        Spec("selective_scan", "mamba-130m bf16 N=16", scan._selective_scan_kernel, act,
             dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=False, STORE_Y=True,
                  STORE_H=True), scan_blocks, ones=scan_ones),
        Spec("selective_scan", "B, C in fp32 (bc_fp32: the NVIDIA default)", scan._selective_scan_kernel,
             {**act, "B_ptr": "fp32", "C_ptr": "fp32"},
             dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=False, STORE_Y=True,
                  STORE_H=True), scan_blocks, ones=scan_ones),
        Spec("selective_scan", "chunk pass 1 (local states)", scan._selective_scan_kernel, act,
             dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=False, STORE_Y=False,
                  STORE_H=True), scan_blocks, ones=scan_ones),
        Spec("selective_scan", "chunk pass 3 (rescan from the true start, final state)", scan._selective_scan_kernel,
             act, dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=True, STORE_Y=True,
                       STORE_H=False, STORE_H_LAST=True), scan_blocks, ones=scan_ones),
        Spec("selective_scan", "chunk pass 2 (state passing)", scan._chunk_state_kernel, {},
             dict(HAS_H0=False), lambda t: ({k: v for k, v in scan_blocks(t)[0].items() if k not in ("PREFETCH", "POLY", "EVEN_D", "EVEN_N")},
                                            scan_blocks(t)[1])),
        Spec("selective_scan", "position-parallel (par_len: seqlen-contiguous, small grids)",
             scan_par._selective_scan_par_kernel, act,
             dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=False), scan_par_blocks,
             ones=("s_u_l", "s_dt_l", "s_B_l", "s_C_l", "s_z_l", "s_o_d")),
        Spec("selective_scan", "seqlen-contiguous u, delta, z read in place (len_tile)",
             scan_len._selective_scan_len_kernel, {**act, "B_ptr": "fp32", "C_ptr": "fp32"},
             dict(DELTA_SOFTPLUS=True, HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, HAS_H0=False), scan_len_blocks,
             ones=("s_u_l", "s_dt_l", "s_B_n", "s_C_n", "s_z_l", "s_o_d")),
        Spec("channels_last", "bf16, before the scan (transpose_len)", cl._channels_last_kernel,
             {"x_ptr": "bf16", "y_ptr": "bf16"}, {}, lambda t: ({"BLOCK_D": 64, "BLOCK_L": 64}, 4),
             ones=("s_x_l", "s_y_d")),
        Spec("selective_state_update", "mamba-130m N=16 per-channel A", ssu._selective_state_update_kernel,
             {"x_ptr": "bf16", "dt_ptr": "bf16", "B_ptr": "bf16", "C_ptr": "bf16", "z_ptr": "bf16", "out_ptr": "bf16"},
             dict(DT_SOFTPLUS=True, TIE_HDIM=False, HAS_DT_BIAS=True, HAS_D=True, HAS_Z=True),
             ssu_blocks(16, 1536, False)),
        Spec("selective_state_update", "mamba2-130m N=128 scalar A per head", ssu._selective_state_update_kernel,
             {"x_ptr": "bf16", "dt_ptr": "bf16", "B_ptr": "bf16", "C_ptr": "bf16", "out_ptr": "bf16"},
             dict(DT_SOFTPLUS=True, TIE_HDIM=True, HAS_DT_BIAS=True, HAS_D=True, HAS_Z=False),
             ssu_blocks(128, 64, True)),
        Spec("ssd_chunk_scan", "mamba2-130m bf16 P=64 N=128", ssd._ssd_chunk_scan_kernel, act,
             dict(headdim=64, dstate=128, heads_per_group=24, DT_MIN=0.0, DT_MAX=3.0e38,
                  DT_SOFTPLUS=True, HAS_D=True, D_HAS_HDIM=False, HAS_Z=False, HAS_DT_BIAS=True, HAS_H0=True, DOT_DTYPE=tl.bfloat16,
                  PRECISION=None),
             ssd_blocks),
        Spec("rms_norm", "residual add + norm, N=768 bf16", norm._rms_norm_kernel,
             {"x_ptr": "bf16", "w_ptr": "bf16", "out_ptr": "bf16"},
             dict(HAS_RES=True, HAS_Z=False, STORE_RES=True, ROUND_INPUT=True), lambda t: ({"BLOCK": 1024}, 4)),
        Spec("rms_norm", "gated norm, N=1536 bf16", norm._rms_norm_kernel,
             {"x_ptr": "bf16", "z_ptr": "bf16", "w_ptr": "bf16", "out_ptr": "bf16"},
             dict(HAS_RES=False, HAS_Z=True, STORE_RES=False, ROUND_INPUT=False), lambda t: ({"BLOCK": 2048}, 4)),
        Spec("causal_conv1d", "bf16 K=4 + SiLU", conv._causal_conv1d_kernel, {"x_ptr": "bf16", "out_ptr": "bf16"},
             dict(K=4, HAS_BIAS=True, SILU=True), conv_blocks),
        Spec("causal_conv1d_update", "bf16 K=4 S=4 + SiLU", conv._causal_conv1d_update_kernel,
             {"x_ptr": "bf16", "state_ptr": "bf16", "out_ptr": "bf16"},
             dict(K=4, S=4, S_P2=4, HAS_BIAS=True, SILU=True), conv_update_blocks),
    ]


def _signature(spec: Spec, constexprs: dict) -> dict:
    sig = {}
    for p in spec.kernel.params:
        if p.is_constexpr or p.name in constexprs:
            sig[p.name] = "constexpr"
        elif p.name.endswith("_ptr"):
            sig[p.name] = "*" + spec.ptr_dtypes.get(p.name, "fp32")
        elif p.name in ("dt_min", "dt_max", "eps"):
            sig[p.name] = "fp32"
        else:
            sig[p.name] = "i32"
    return sig


def _attrs(spec: Spec, signature: dict) -> dict:
    """Divisibility hints as Triton's launcher gives them for the model's shapes: pointers 16-byte aligned and
    integer args multiples of 16, except where the kernel opts out (`do_not_specialize_on_alignment`) or the
    spec says the value is not (`nodiv`). Without them the table described a kernel that never runs: at launch
    the scan's `dim` % 16 == 0 changed its layouts (shared-memory round trips and barriers in the loop)."""
    attrs = {}
    for i, p in enumerate(spec.kernel.params):
        t = signature.get(p.name)
        if t is None or t == "constexpr" or p.do_not_specialize or p.do_not_specialize_on_alignment:
            continue
        if t.startswith("*") or (t == "i32" and p.name not in spec.nodiv):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return attrs


def _amd_stats(amdgcn: str) -> dict:
    def grab(pattern, cast=int):
        m = re.search(pattern, amdgcn)
        return cast(m.group(1)) if m else None

    return {
        "vgpr": grab(r"\.vgpr_count:\s+(\d+)"),
        "sgpr": grab(r"\.sgpr_count:\s+(\d+)"),
        "agpr": grab(r"\.agpr_count:\s+(\d+)"),
        "vgpr_spill": grab(r"\.vgpr_spill_count:\s+(\d+)"),
        "sgpr_spill": grab(r"\.sgpr_spill_count:\s+(\d+)"),
        "lds_bytes": grab(r"\.group_segment_fixed_size:\s+(\d+)"),
        "scratch_bytes": grab(r"; ScratchSize:\s+(\d+)"),
        "occupancy": grab(r"; Occupancy:\s+(\d+)"),
    }


def _ptxas_stats(ptx: str, arch: int) -> dict:
    from triton.backends.nvidia.compiler import get_ptxas

    m = re.search(r"\.target\s+(sm_\w+)", ptx)
    sm = m.group(1) if m else f"sm_{arch}"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    cmd = [get_ptxas(arch).path, f"-arch={sm}", "-v", f.name, "-o", "/dev/null"]
    log = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stderr
    regs = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return {
        "registers": int(regs.group(1)) if regs else None,
        "spill_stores": int(spill.group(1)) if spill else None,
        "spill_loads": int(spill.group(2)) if spill else None,
    }


def _sass_loop(cubin: bytes, arch: int) -> dict:
    """Instruction mix of the kernel's largest loop (the longest backward branch) in its sm_XX SASS, from Triton's
    bundled `nvdisasm`: {"loop_instrs": n, "loop_ops": {opcode: count}}; {} when nvdisasm is not there. For the
    scan this is the work of one position per warp, the number its speed follows (issue 15)."""
    import collections
    import os

    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "nvdisasm")
    if not os.path.exists(tool):
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    sass = subprocess.run([tool, "-c", f.name], capture_output=True, text=True, timeout=120).stdout
    os.unlink(f.name)
    code = re.compile(r"\s+/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)")
    instrs = [(int(m.group(1), 16), m.group(2), line) for line in sass.splitlines() if (m := code.match(line))]
    labels = {}
    lines = sass.splitlines()
    for i, line in enumerate(lines):
        if (m := re.match(r"\.(L_x_\d+):", line)):
            nxt = next((code.match(x) for x in lines[i + 1:i + 4] if code.match(x)), None)
            if nxt:
                labels[m.group(1)] = int(nxt.group(1), 16)
    best = None
    for addr, op, line in instrs:
        if op == "BRA" and (m := re.search(r"(L_x_\d+)", line)) and labels.get(m.group(1), addr) < addr:
            start = labels[m.group(1)]
            if best is None or addr - start > best[1] - best[0]:
                best = (start, addr)
    if best is None:
        return {"loop_instrs": 0, "loop_ops": {}}
    ops = collections.Counter(op for addr, op, _ in instrs if best[0] <= addr <= best[1])
    return {"loop_instrs": sum(ops.values()), "loop_ops": dict(ops.most_common())}


def compile_one(spec: Spec, target: tuple) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    backend, arch, warp = target
    vendor = "hip" if backend == "hip" else "cuda"
    blocks, num_warps = spec.blocks(f"{vendor}:{arch}")  # the launch configs take arch-qualified targets
    blocks = dict(blocks)
    options = {"num_warps": num_warps}
    if blocks.get("num_stages"):
        options["num_stages"] = blocks["num_stages"]
    blocks.pop("num_stages", None)
    constexprs = {**spec.flags, **blocks, **dict.fromkeys(spec.ones, 1)}
    rec = {"op": spec.op, "variant": spec.variant, "kernel": spec.kernel.fn.__name__, "target": f"{backend}:{arch}",
           "backend": backend, "arch": str(arch), "warp_size": warp, "num_warps": num_warps,
           "config": json.dumps({**blocks, **options}, sort_keys=True), "triton": triton.__version__}
    t0 = time.perf_counter()
    try:
        sig = _signature(spec, constexprs)
        src = ASTSource(fn=spec.kernel, signature=sig, constexprs=constexprs, attrs=_attrs(spec, sig))
        compiled = triton.compile(src, target=GPUTarget(backend, arch, warp), options=options)
        rec["compile_s"] = round(time.perf_counter() - t0, 3)
        rec["shared_bytes"] = getattr(compiled.metadata, "shared", None)
        if backend == "hip":
            rec.update(_amd_stats(compiled.asm["amdgcn"]))
            # VGPR spills and scratch go to memory; SGPR spills go to VGPR lanes (v_writelane), so they
            # are shown but do not count as a memory spill
            rec["spills"] = (rec["vgpr_spill"] or 0) + (rec["scratch_bytes"] or 0)
            rec["lds_bytes"] = max(rec["lds_bytes"] or 0, rec["shared_bytes"] or 0)
        else:
            rec.update(_ptxas_stats(compiled.asm["ptx"], arch))
            loop = _sass_loop(compiled.asm["cubin"], arch)
            rec["loop_instrs"] = loop.get("loop_instrs")
            rec["loop_ops"] = json.dumps(loop.get("loop_ops", {}))
            rec["spills"] = (rec["spill_stores"] or 0) + (rec["spill_loads"] or 0)
        rec["ok"] = True
        rec["error"] = ""
    except Exception as exc:  # a compile error is a result to report, not a crash of the table
        rec.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:500]}", compile_s=round(time.perf_counter() - t0, 3))
    return rec


def run(targets=TARGETS, only: list[str] | None = None) -> list[dict]:
    records = []
    for spec in specs():
        if only and spec.op not in only:
            continue
        for target in targets:
            records.append(compile_one(spec, target))
    return records


COLUMNS = ("op", "variant", "target", "num_warps", "ok", "vgpr", "sgpr", "registers", "spills", "sgpr_spill", "lds_bytes",
           "shared_bytes", "occupancy", "loop_instrs", "compile_s")


def format_table(records: list[dict]) -> str:
    rows = [[str(r.get(c, "")) if r.get(c) is not None else "-" for c in COLUMNS] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    for r in records:
        if not r["ok"]:
            lines.append(f"FAILED {r['op']} [{r['variant']}] on {r['target']}: {r['error']}")
    return "\n".join(lines)


def parse_targets(text: str | None) -> tuple:
    if not text:
        return TARGETS
    out = []
    for item in text.split(","):
        backend, arch = item.strip().split(":")
        out.append((backend, arch if backend == "hip" else int(arch), 64 if backend == "hip" else 32))
    return tuple(out)
