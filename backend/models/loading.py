"""Load a registry entry onto a device and wrap it as an HFGenerator.

Device "auto": `SSM_ARENA_DEVICE` if set, else cuda when `torch.cuda.is_available()` (ROCm builds show up
as cuda too; `runinfo` records `torch.version.hip`), else cpu. Dtype "auto": bfloat16 on GPU, float32 on
CPU. `HF_HUB_OFFLINE` is respected (`local_files_only`), and so is an unreachable Hub (decided once per
process by backend.models.network, so a load fails within seconds instead of waiting on the network); hub
kernel downloads are switched off (`USE_HUB_KERNELS=0` before transformers is imported), and every failure
becomes one of UnknownModelError / ModelUnavailableError / CorruptModelError with a sentence saying what to do.
"""

from __future__ import annotations

import importlib
import logging
import os

os.environ.setdefault("USE_HUB_KERNELS", "0")  # must precede the first transformers import

import torch

from backend.device import device_name, resolve_device, resolve_dtype
from backend.errors import CorruptModelError, ModelUnavailableError
from backend.generation.decode import HFGenerator, model_info
from backend.models import network, registry
from backend.models.registry import ModelSpec

log = logging.getLogger(__name__)

# Modules that may add faster steppers (static caches, CUDA graphs) through a `register()` function.
OPTIONAL_STEPPER_MODULES = ("backend.generation.tf_stepper", "backend.generation.ssm_stepper")
def _register_optional_steppers() -> None:
    for mod_name in OPTIONAL_STEPPER_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        register = getattr(mod, "register", None)
        if callable(register):
            try:
                register()
            except Exception as e:  # a broken optional stepper must not break loading
                log.warning("could not register steppers from %s: %s", mod_name, e)


def _fast_ssm(model, family: str) -> bool:
    """Whether the model's SSM layers go onto our kernels: Mamba / Mamba-2, and hybrids whose SSM layers are
    Mamba-2 mixers `ssm_fast` knows (Bamba; a hybrid of other mixers, e.g. Jamba's, keeps Hugging Face's)."""
    if family in ("mamba", "mamba2"):
        return True
    if family != "hybrid":
        return False
    try:
        ssm_fast = importlib.import_module("backend.generation.ssm_fast")
    except ImportError:
        return False
    return bool(ssm_fast.supports(model))


def _state_and_kv_bytes(model, family: str) -> tuple[int | None, int | None]:
    """(bytes of the state one sequence keeps whatever its length, KV bytes each token adds), measured on the
    model's own cache (`backend.generation.metrics.state_and_kv_bytes`); (None, None) if that fails."""
    from backend.generation.metrics import state_and_kv_bytes
    from backend.generation.steppers import EagerStepper

    try:
        return state_and_kv_bytes(EagerStepper(model, family))
    except Exception as e:  # a measurement must never break loading
        log.warning("could not measure the state and KV bytes of %s (%s: %s)", type(model).__name__,
                    type(e).__name__, e)
        return None, None


def _ssm_path(model) -> str:
    """Let backend.generation.ssm_fast switch HF Mamba / Mamba-2 (or a hybrid's Mamba-2 layers) onto our
    kernels; report the path it chose."""
    try:
        ssm_fast = importlib.import_module("backend.generation.ssm_fast")
    except ImportError:
        return "hf-torch"
    try:
        return str(ssm_fast.enable(model))
    except Exception as e:  # keep the model usable on the plain HF path, but say so in the log
        log.warning("backend.generation.ssm_fast.enable failed (%s); using the Hugging Face torch path", e)
        return "hf-torch"


def _location(spec: ModelSpec) -> tuple[str, bool]:
    """(folder or repo id, local_files_only) for from_pretrained; raises before any slow work."""
    if spec.source == "bundled":
        if spec.placeholder:
            from backend.models.placeholders import placeholder_folder

            return str(placeholder_folder(spec.name)), True
        registry.inspect_folder(spec.location)
        return spec.location, True
    if spec.source == "local":
        registry.inspect_folder(spec.location)
        return spec.location, True
    offline = network.offline()  # decided once per process: a missing network never blocks a load
    if offline and not registry.hf_cached(spec.location):
        raise ModelUnavailableError(
            f"Model '{spec.location}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. Download "
            f"it on a machine with network (huggingface-cli download {spec.location}) or add a local folder on "
            "the Models page.")
    return spec.location, offline


def _load_error(spec: ModelSpec, err: Exception) -> Exception:
    detail = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    if spec.source == "hf":
        return ModelUnavailableError(
            f"Model '{spec.location}' could not be loaded from the Hugging Face Hub or the local cache ({detail}). "
            f"Check the network, or download it elsewhere (huggingface-cli download {spec.location}) and add "
            "the folder on the Models page.")
    return CorruptModelError(
        f"The model folder for '{spec.name}' could not be loaded ({detail}). Re-save it with save_pretrained() "
        "or remove it on the Models page.")


def _forward_check(model) -> None:
    """One short forward through the model's own modules (what scoring and the inside view run): the steppers'
    bound CPU prefill and decode loops (backend/generation/cpu_prefill.py, cpu_decode.py) call the kernels
    directly, so a warm-up generation alone no longer exercises the mixers' patched forward."""
    dev = next(model.parameters()).device
    vocab = int(model.get_input_embeddings().weight.shape[0])
    with torch.inference_mode():
        model(input_ids=(torch.arange(1, 9, device=dev) % vocab)[None])


def load_generator(spec: ModelSpec, device: str = "auto", dtype: str | None = None,
                   warmup: bool = True) -> HFGenerator:
    """Load `spec` onto `device` (auto|cpu|cuda[:n]) with `dtype` (default: the spec's, then auto), then
    run one short untimed generation so that the first measured one is warm (design: warm up first)."""
    dev = str(resolve_device(device))
    try:
        torch_dtype = resolve_dtype(dtype or spec.dtype, dev)
    except ValueError as e:
        raise CorruptModelError(str(e)) from None
    location, local_only = _location(spec)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, local_files_only=local_only)
    except Exception as e:  # hub errors are OSErrors; safetensors / tokenizers raise their own types
        raise _load_error(spec, e) from e
    family = registry.MODEL_TYPE_FAMILY.get(getattr(model.config, "model_type", None))
    if family is None:
        raise CorruptModelError(
            f"'{spec.name}' loaded, but its model_type '{model.config.model_type}' is not one this dashboard "
            "knows how to compare. Supported: " + ", ".join(sorted(registry.MODEL_TYPE_FAMILY)) + ".")
    try:
        model = model.to(dev).eval()
    except torch.OutOfMemoryError as e:
        raise ModelUnavailableError(
            f"'{spec.name}' does not fit in the memory of {dev}. Unload other models or pick a smaller one.") from e
    fast_ssm = _fast_ssm(model, family)
    if fast_ssm:
        path = _ssm_path(model)
    else:
        path = getattr(model.config, "_attn_implementation", None) or "eager"
    model.arena_path = path
    _register_optional_steppers()
    info = model_info(spec.name, family, model, torch.device(dev), device_name(dev), path,
                      placeholder=spec.placeholder, train_context=spec.train_context)
    gen = HFGenerator(model, tokenizer, info, dev)
    info.path = gen.stepper.path  # e.g. "sdpa+static+cudagraph" when a GPU stepper took the model
    if warmup:
        try:
            gen.warmup()
            if fast_ssm:
                _forward_check(model)
        except Exception as e:
            if path == "hf-torch" or not fast_ssm:
                raise
            # our SSM kernels failed on this model: keep it usable on Hugging Face's own path, labelled so
            log.warning("the %s SSM path failed on %s (%s: %s); falling back to the Hugging Face torch path",
                        path, spec.name, type(e).__name__, e)
            importlib.import_module("backend.generation.ssm_fast").disable(model)
            model.arena_path = "hf-torch"
            gen = HFGenerator(model, tokenizer, info, dev)
            info.path = gen.stepper.path
            gen.warmup()
    info.state_bytes, info.kv_bytes_per_token = _state_and_kv_bytes(model, family)
    return gen
