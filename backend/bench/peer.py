"""mamba-ssm's CUDA selective-scan forward, built on the GPU machine from mamba-ssm's PyPI source distribution,
as a *peer* that `kernel-bench` times on the same inputs as our Triton scan. Its rows are labelled
`mamba-ssm-cuda` and it is never this project's path: nothing else imports this module.

Why only the forward: the whole mamba-ssm build (every forward and backward kernel, several architectures)
takes many minutes; the forward files alone, for the GPU in the machine, build in about a minute. The source
is read from the sdist at build time (nothing of it is kept in this repository); the sdist is fetched where
pip works, e.g.
    MAMBA_SKIP_CUDA_BUILD=TRUE pip download --no-deps --no-binary :all: --no-build-isolation \
        mamba-ssm==2.3.2.post1 -d .gpu_sdist/
and passed as `python -m backend kernel-bench --mamba-ssm-cuda .gpu_sdist/mamba_ssm-2.3.2.post1.tar.gz`.

`build(sdist) -> scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> (y, last_state)` with our
`selective_scan` signature (u, delta, z [batch, dim, seqlen]; B, C [batch, dstate, seqlen]). mamba-ssm's
kernel wants seqlen contiguous and 4-D B / C [batch, groups, dstate, seqlen]: `scan` makes that layout
(outside any timing the caller does: `prepare` returns the converted arguments and `run` the call).
"""

from __future__ import annotations

import os
import tarfile
import tempfile

import torch

BACKWARD_ENTRY = "std::vector<at::Tensor>\nselective_scan_bwd("
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "--expt-relaxed-constexpr", "--expt-extended-lambda",
              "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "-U__CUDA_NO_BFLOAT16_OPERATORS__",
              "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_BFLOAT162_OPERATORS__",
              "-U__CUDA_NO_BFLOAT162_CONVERSIONS__"]  # mamba-ssm's own setup.py flags for these files


def _forward_binding(cpp: str) -> str:
    """mamba-ssm's binding file cut before the backward entry point, exporting only the forward."""
    if BACKWARD_ENTRY not in cpp:
        raise ValueError("This mamba-ssm source has no selective_scan_bwd where expected; use mamba-ssm 2.3.x.")
    return cpp[:cpp.index(BACKWARD_ENTRY)] + \
        '\nPYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("fwd", &selective_scan_fwd); }\n'


def build(sdist: str, workdir: str | None = None):
    """Compile the forward kernels (bf16, fp16, fp32) for this machine's GPU; returns the extension."""
    from torch.utils.cpp_extension import load  # needs nvcc: only on the GPU machine, only when asked

    workdir = workdir or tempfile.mkdtemp(prefix="mamba_ssm_cuda_")
    with tarfile.open(sdist) as tf:
        keep = [m for m in tf.getmembers() if "/csrc/selective_scan/" in m.name and "_bwd" not in m.name]
        if not keep:
            raise ValueError(f"{sdist} has no csrc/selective_scan/: pass mamba-ssm's source distribution.")
        tf.extractall(workdir, members=keep, filter="data")
    src = next(root for root, _, files in os.walk(workdir) if "selective_scan.cpp" in files)
    with open(os.path.join(src, "selective_scan.cpp")) as f:
        binding = _forward_binding(f.read())
    with open(os.path.join(src, "forward_only.cpp"), "w") as f:
        f.write(binding)
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    sources = [os.path.join(src, "forward_only.cpp")] + [os.path.join(src, f"selective_scan_fwd_{t}.cu")
                                                         for t in ("bf16", "fp16", "fp32")]
    return load(name="mamba_ssm_cuda_peer", sources=sources, extra_cflags=["-O3", "-std=c++17"],
                extra_cuda_cflags=NVCC_FLAGS + ["-gencode", f"arch=compute_{arch},code=sm_{arch}"],
                extra_include_paths=[src], verbose=False)


def prepare(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Our arguments in mamba-ssm's layout: seqlen contiguous, B / C with a group dim."""
    def seq_major(t):
        return None if t is None else t.contiguous()
    return (seq_major(u), seq_major(delta), A.contiguous(), B.contiguous()[:, None], C.contiguous()[:, None],
            None if D is None else D.float().contiguous(), seq_major(z),
            None if delta_bias is None else delta_bias.float().contiguous(), bool(delta_softplus))


def run(ext, prepared):
    """(y, last_state), as mamba-ssm's `selective_scan_fn(..., return_last_state=True)` reads them: with z
    the gated output is the last element returned; the state is the odd slots of the last chunk of `x`."""
    out, x, *rest = ext.fwd(*prepared)
    return (rest[-1] if prepared[6] is not None else out), x[:, :, -1, 1::2]
