"""Plain words for what the Arena measured: the kernel / attention path that ran, and each model's memory.

    path_explanation(path, family, device) -> str   one or two sentences for a column
    weight_bytes(info) -> int | None                parameters x bytes per element of the loaded dtype
    model_memory(info, metrics) -> ModelMemory      weights + cache (this model), beside the process figure
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
               "float8_e4m3fn": 1, "float8_e5m2": 1}

_PARTS = {
    "reference": ("the PyTorch reference scan of kernels/: the recurrence runs one position at a time in "
                  "Python, so prefill time grows with every prompt token while attention does the whole "
                  "prompt in one batched matrix product. On a CPU that makes the SSM's prefill (and so its "
                  "time to first token) slower than the transformer's; its per-token decode step and its "
                  "fixed-size state are what the comparison is about. The Triton kernels need a GPU."),
    "cpu-chunked": ("the CPU fast path of kernels/: the prefill scan compiled with numba (Mamba) or as chunked "
                    "matrix products (Mamba-2), the decode step's state update fused. For a model this small, "
                    "a CPU step is mostly per-layer overhead, so CPU timings say more about the code path than "
                    "about the architectures; speed claims come from GPU runs (Performance page)."),
    "triton": "our Triton SSM kernels (kernels/), a fused scan on the GPU.",
    "mamba-ssm": "the mamba-ssm package's CUDA kernels.",
    "hf-torch": ("Hugging Face's own PyTorch SSM code (our kernels were not used for this model), the slowest "
                 "SSM path."),
    "sdpa": "PyTorch's scaled-dot-product attention over a cache of keys and values that grows with the text.",
    "eager": "plain matrix-product attention (no fused kernel) over a growing key / value cache.",
    "flash_attention_2": "FlashAttention-2 kernels over a growing key / value cache.",
    "fake": "the fake backend of the UI tests: no model ran, the numbers only exercise the page.",
}
_SUFFIXES = {
    "static": "The key / value cache is preallocated for the whole generation (a static cache).",
    "cudagraph": "Each decode step replays a captured CUDA graph (no per-kernel launch cost).",
}


def path_explanation(path: str | None, family: str | None = None, device: str | None = None) -> str:
    """What the path string of a measurement means, e.g. "reference", "sdpa+static+cudagraph"."""
    if not path:
        return ""
    head, *rest = str(path).split("+")
    base = _PARTS.get(head)
    text = f"Ran on {base}" if base else f"Ran on the '{head}' path."
    for part in rest:
        if part in _SUFFIXES:
            text += " " + _SUFFIXES[part]
    if device and "cpu" not in str(device).lower() and head == "reference":
        text += " (This GPU run used the reference path: set SSM_ARENA_KERNELS=auto to use the kernels.)"
    return text


def weight_bytes(info) -> int | None:
    """Bytes of the model's parameters as loaded (tied embeddings counted once)."""
    per = DTYPE_BYTES.get(str(getattr(info, "dtype", "")).removeprefix("torch."))
    n = getattr(info, "n_params", None)
    return int(n) * per if per and n else None


@dataclass(frozen=True)
class ModelMemory:
    weights: int | None
    cache: int | None
    process: int | None  # the whole process (every loaded model, the app): peak RSS or GPU allocated
    process_kind: str

    @property
    def model_total(self) -> int | None:
        if self.weights is None:
            return None
        return self.weights + (self.cache or 0)


def model_memory(info, metrics) -> ModelMemory:
    return ModelMemory(weight_bytes(info), getattr(metrics, "cache_bytes", None),
                       getattr(metrics, "peak_mem_bytes", None), getattr(metrics, "peak_mem_kind", ""))
