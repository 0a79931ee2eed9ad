"""Suite-wide set-up, loaded by pytest before any test module.

TRITON_INTERPRET must be set before any `@triton.jit` function is decorated (that is, before any module
imports `kernels.*`), and any test module may do that at collection time, so the variable is set here: on a
machine without a GPU our Triton kernels run through the interpreter; on a GPU machine the same tests run
the compiled kernels.
"""

import os

import torch  # importing torch decorates none of our kernels, so the variable can still be set after it

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.setdefault("USE_HUB_KERNELS", "0")


def pytest_sessionstart(session):
    """The bundled checkpoints are tracked as model.safetensors.xz: unpack them once (what scripts/setup.sh and
    the first load do), so tests that open assets/models/<name>/model.safetensors directly find it."""
    from backend.models.registry import BUNDLED_DIR
    from backend.models.weights import unpack_all

    unpack_all(BUNDLED_DIR)
