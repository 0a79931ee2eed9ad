import importlib.util
import shutil

import pytest
import torch

from backend.device import resolve_device, resolve_dtype, synchronize
from backend.errors import CorruptModelError, ModelUnavailableError
from backend.generation.interface import GenSettings
from backend.models import loading, registry


def test_device_and_dtype_resolution(monkeypatch):
    """One helper (backend/device.py) serves the app, the CLI, the benchmarks and training."""
    monkeypatch.delenv("SSM_ARENA_DEVICE", raising=False)
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("SSM_ARENA_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16 and resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_dtype("int3", "cpu")
    with pytest.raises(ModelUnavailableError, match="Unknown device"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="Unknown device"):  # a ValueError too: argument checks catch it
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="sees none"):
            resolve_device("cuda")
    synchronize("cpu")  # a no-op on the CPU, never an error


@pytest.mark.parametrize("arch, family, path", [("mamba", "mamba", None), ("mamba2", "mamba2", None),
                                                ("llama", "transformer", "sdpa"), ("gpt_neox", "transformer", "sdpa")])
def test_user_path_loads_each_family(tiny_dirs, tmp_path, arch, family, path):
    folder = tmp_path / f"user-{arch}"
    shutil.copytree(tiny_dirs[arch], folder)
    spec = registry.add_local_model(folder)
    from backend.models.manager import ModelManager

    g = ModelManager(fake=False).get(spec.name, device="cpu")
    assert g.info.family == family and g.info.dtype == "float32" and g.info.n_params > 0
    assert (g.info.max_context is None) == (family != "transformer")
    if path:
        assert g.info.path == path
    elif importlib.util.find_spec("backend.generation.ssm_fast") is None:
        assert g.info.path == "hf-torch"
    else:  # our kernels: whatever path backend.generation.ssm_fast reports
        assert isinstance(g.info.path, str) and g.info.path
    assert g.generate("Hello", GenSettings(max_new_tokens=2)).metrics.path == g.info.path


def test_damaged_weights_are_corrupt(tiny_dirs, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(tiny_dirs["llama"], folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    spec = registry.add_local_model(folder)  # the folder looks right; loading finds the damage
    with pytest.raises(CorruptModelError, match="could not be loaded"):
        loading.load_generator(spec, device="cpu")


def test_hf_id_not_cached_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = registry.get_spec("EleutherAI/pythia-160m")
    with pytest.raises(ModelUnavailableError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        loading.load_generator(spec, device="cpu")


def test_ssm_fast_hook_sets_path(tiny_dirs, monkeypatch):
    import sys
    import types

    calls = []
    fake_mod = types.ModuleType("backend.generation.ssm_fast")
    fake_mod.enable = lambda model: calls.append(type(model).__name__) or "reference"
    monkeypatch.setitem(sys.modules, "backend.generation.ssm_fast", fake_mod)
    spec = registry.ModelSpec("m", "mamba", "local", str(tiny_dirs["mamba"]))
    g = loading.load_generator(spec, device="cpu")
    assert calls == ["MambaForCausalLM"] and g.info.path == "reference"


def test_failing_ssm_kernels_fall_back_to_hf_path(tiny_dirs, monkeypatch):
    import sys
    import types

    def broken(*a, **k):
        raise RuntimeError("kernel exploded")

    def enable(model):
        for layer in model.backbone.layers:
            layer.mixer.forward = broken
        return "triton"

    def disable(model):
        for layer in model.backbone.layers:
            del layer.mixer.forward

    fake_mod = types.ModuleType("backend.generation.ssm_fast")
    fake_mod.enable, fake_mod.disable = enable, disable
    monkeypatch.setitem(sys.modules, "backend.generation.ssm_fast", fake_mod)
    spec = registry.ModelSpec("m2", "mamba2", "local", str(tiny_dirs["mamba2"]))
    g = loading.load_generator(spec, device="cpu")
    assert g.info.path == "hf-torch"
    res = g.generate("Hello", GenSettings(max_new_tokens=3, stop_at_eos=False))
    assert res.metrics.path == "hf-torch" and res.metrics.new_tokens == 3
