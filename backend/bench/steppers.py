"""Load a benchmark model and give it its best standard decode stepper.

- transformer: SDPA attention, HF `StaticCache`, the step captured in a CUDA graph on CUDA
  (`backend.generation.tf_stepper.StaticGraphStepper`; eager static-cache steps on CPU, labelled as such).
- mamba / mamba2: our kernels (`backend.generation.ssm_fast.enable`, when that module is present) and whatever
  stepper `backend.generation.steppers` selects for the model on this device (the CUDA-graph SSM stepper registers
  there; otherwise the eager cache loop). The path that actually ran is recorded on every row.
- "eager" (any family): the shared eager loop with HF's DynamicCache, a labelled reference row.
"""

from __future__ import annotations

import logging

import torch

from backend.bench.shapes import Shape, bundled_folder
from backend.generation import steppers

log = logging.getLogger(__name__)


def load_model(shape: Shape, device: torch.device, dtype: torch.dtype):
    """Return (model, kernel_path). Random weights for real shapes; bundled folders from disk."""
    from transformers import AutoModelForCausalLM

    if shape.bundled:
        folder = bundled_folder(shape.name)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"The bundled model {shape.name!r} is not in {folder} yet. Train it first "
                "(python -m backend train) or leave it out of --models."
            )
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(device)
    else:
        # Built where it runs, in its dtype: a 1.4B shape is initialised by a few GPU kernels in about a
        # second, with no fp32 copy (5.6 GB) made first and cast after.
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(shape.config(), dtype=dtype)
    model.eval()
    path = "hf-torch"
    if shape.family == "transformer":
        try:
            model.set_attn_implementation("sdpa")
        except Exception as e:  # noqa: BLE001 - keep whatever the model supports, and say so
            log.warning("SDPA not available for %s (%s); using %s", shape.name, e, model.config._attn_implementation)
        path = model.config._attn_implementation or "eager"
    else:
        try:
            from backend.generation import ssm_fast
        except ImportError:
            ssm_fast = None
        except Exception as e:  # noqa: BLE001 - a broken optional module must not stop the benchmark
            log.warning("backend.generation.ssm_fast failed to import (%s); %s runs on the HF torch path", e, shape.name)
            ssm_fast = None
        if ssm_fast is not None:
            try:
                path = str(ssm_fast.enable(model))
            except Exception as e:  # noqa: BLE001 - recorded as the HF path, with the reason in the log
                log.warning("ssm_fast.enable failed for %s (%s); using the HF torch path", shape.name, e)
    model.arena_path = path  # the label backend.generation.steppers gives eager runs of this model
    return model, path


def _registered_stepper(model, family: str, device: torch.device):
    """The stepper `backend.generation.steppers` chooses for this model and device (registered GPU steppers first)."""
    try:  # the SSM CUDA-graph stepper, when it exists, registers itself with backend.generation.steppers
        from backend.generation import ssm_stepper

        if callable(getattr(ssm_stepper, "register", None)):
            ssm_stepper.register()
    except Exception as e:  # noqa: BLE001 - absent or broken: the shared eager loop is used (path recorded)
        log.info("no SSM CUDA-graph stepper (%s)", e)
    return steppers.make_stepper(model, family, device)


def eager_stepper(model, family: str, device: torch.device):
    from backend.generation.steppers import EagerStepper

    return EagerStepper(model, family, device)


def best_stepper(model, family: str, device: torch.device, new_tokens: int):
    """The family's best standard path on this device (see the module docstring)."""
    if family == "transformer":
        from backend.generation.tf_stepper import StaticGraphStepper

        return StaticGraphStepper(model, max_new_tokens=new_tokens, use_cuda_graph=device.type == "cuda")
    return _registered_stepper(model, family, device)


def make_stepper(kind: str, model, family: str, device: torch.device, new_tokens: int):
    """The sweep's stepper for a point: the shared eager loop for kind "eager", else the family's best path."""
    if kind == "eager":
        return eager_stepper(model, family, device)
    return best_stepper(model, family, device, new_tokens)
