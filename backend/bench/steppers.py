"""Load a benchmark model and give it its best standard decode stepper.

- transformer: SDPA attention, HF `StaticCache`, the step captured in a CUDA graph on CUDA
  (`backend.generation.tf_stepper.StaticGraphStepper`; eager static-cache steps on CPU, labelled as such).
- mamba / mamba2: our kernels (`backend.generation.ssm_fast.enable`, when that module is present) and whatever
  stepper `backend.generation.steppers` selects for the model on this device (the CUDA-graph SSM stepper registers
  there; otherwise the eager cache loop). The path that actually ran is recorded on every row.
- hybrid (Bamba: Mamba-2 layers plus a few attention layers): its Mamba-2 layers on our kernels (`ssm_fast`, when
  it knows the mixers; else "hf-torch"), decoded by the shared eager loop on the model's own hybrid cache
  (`backend.generation.steppers.EagerStepper`; no SSM CUDA-graph stepper takes a hybrid), cache kind
  "ssm_state+kv". The kernel path recorded is the Mamba layers'; `attn_path` on its rows is the attention's.
- "eager" (any family): the shared eager loop with HF's DynamicCache, a labelled reference row.

`model_facts` gives the columns every row of a model carries: its cache split for one sequence (`state_bytes`,
the conv + SSM state whatever the length; `kv_bytes_per_token`, the K + V each token adds), as the loader's
ModelInfo has it (backend.generation.metrics.state_and_kv_bytes), and for a hybrid its attention path.
"""

from __future__ import annotations

import logging

import torch

from backend.bench.shapes import Shape, bundled_folder
from backend.generation import steppers
from backend.models.weights import ensure_weights

log = logging.getLogger(__name__)


def has_attention(family: str) -> bool:
    """Whether the family has attention layers, hence a KV cache and a trained position limit."""
    return family in ("transformer", "hybrid")


def has_ssm_layers(family: str) -> bool:
    """Whether the family has Mamba / Mamba-2 layers that `ssm_fast` may put on our kernels."""
    return family in ("mamba", "mamba2", "hybrid")


def _ssm_fast_path(model, name: str) -> str:
    """Put the model's Mamba layers on our kernels (`backend.generation.ssm_fast`); the path that will run, or
    "hf-torch" where the module is absent or broken, or knows none of the model's mixers (e.g. Jamba's)."""
    try:
        from backend.generation import ssm_fast
    except ImportError:
        return "hf-torch"
    except Exception as e:  # noqa: BLE001 - a broken optional module must not stop the benchmark
        log.warning("backend.generation.ssm_fast failed to import (%s); %s runs on the HF torch path", e, name)
        return "hf-torch"
    try:
        if not ssm_fast.supports(model):
            return "hf-torch"
        return str(ssm_fast.enable(model))
    except Exception as e:  # noqa: BLE001 - recorded as the HF path, with the reason in the log
        log.warning("ssm_fast.enable failed for %s (%s); using the HF torch path", name, e)
        return "hf-torch"


def load_model(shape: Shape, device: torch.device, dtype: torch.dtype):
    """Return (model, kernel_path). Random weights for real shapes; bundled folders from disk."""
    from transformers import AutoModelForCausalLM

    if shape.folder:  # a registered local folder
        model = AutoModelForCausalLM.from_pretrained(str(ensure_weights(shape.folder)), dtype=dtype,
                                                     local_files_only=True).to(device)
    elif shape.bundled:
        folder = bundled_folder(shape.name)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"The bundled model {shape.name!r} is not in {folder} yet. Train it first "
                "(python -m backend train) or leave it out of --models."
            )
        model = AutoModelForCausalLM.from_pretrained(str(ensure_weights(folder)), dtype=dtype).to(device)
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
    else:  # mamba, mamba2, hybrid: the Mamba layers' path (a hybrid's attention keeps its HF implementation)
        path = _ssm_fast_path(model, shape.name)
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

    return EagerStepper(model, family, device)  # a hybrid's cache_kind is "ssm_state+kv" (state and KV)


def model_facts(model, family: str) -> dict:
    """Columns for every row of this model: `state_bytes` and `kv_bytes_per_token` of one sequence (measured on
    a batch-1 eager stepper, as the loader's ModelInfo; left out if that fails), and a hybrid's `attn_path`."""
    from backend.generation.metrics import state_and_kv_bytes

    facts: dict = {}
    try:
        facts["state_bytes"], facts["kv_bytes_per_token"] = state_and_kv_bytes(eager_stepper(model, family, None))
    except Exception as e:  # noqa: BLE001 - a measurement must never stop the benchmark
        log.info("no state / KV split for %s (%s: %s)", type(model).__name__, type(e).__name__, e)
        facts = {}
    if family == "hybrid":
        facts["attn_path"] = getattr(getattr(model, "config", None), "_attn_implementation", None) or "eager"
    return facts


def best_stepper(model, family: str, device: torch.device, new_tokens: int):
    """The family's best standard path on this device (see the module docstring)."""
    if family == "transformer":
        from backend.generation.tf_stepper import StaticGraphStepper

        return StaticGraphStepper(model, max_new_tokens=new_tokens, use_cuda_graph=device.type == "cuda")
    if family == "hybrid":  # no static-cache or CUDA-graph stepper takes a hybrid: the eager loop is its best
        return eager_stepper(model, family, device)
    return _registered_stepper(model, family, device)


def make_stepper(kind: str, model, family: str, device: torch.device, new_tokens: int):
    """The sweep's stepper for a point: the shared eager loop for kind "eager", else the family's best path."""
    if kind == "eager":
        return eager_stepper(model, family, device)
    return best_stepper(model, family, device, new_tokens)
