"""Bundled weights tracked as model.safetensors.xz (backend/models/weights.py): lossless round trip, freshness,
clear errors, and the tracked tree a GPU call carries."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from backend.errors import CorruptModelError, ModelUnavailableError
from backend.models import registry, weights

ROOT = Path(__file__).resolve().parents[3]
GPU_CARRY_LIMIT = 64 * 2**20  # the device tool carries a tracked tree of at most 64 MiB


def _checkpoint(folder: Path, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    save_file({"a.weight": torch.randn(37, 11, generator=g).bfloat16(), "b.bias": torch.randn(5, generator=g)},
              str(folder / weights.WEIGHTS))
    return (folder / weights.WEIGHTS).read_bytes()


def _age(path: Path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_pack_then_unpack_gives_the_same_bytes_and_counts_params_from_either_form(tmp_path):
    data = _checkpoint(tmp_path)
    packed = weights.pack_weights(tmp_path)
    assert packed.name == "model.safetensors.xz" and packed.stat().st_size > 0
    assert weights.param_count(tmp_path) == 37 * 11 + 5
    (tmp_path / weights.WEIGHTS).unlink()
    assert weights.param_count(tmp_path) == 37 * 11 + 5  # read from the .xz header alone
    assert not weights.is_fresh(tmp_path)
    assert weights.ensure_weights(tmp_path) == tmp_path
    assert (tmp_path / weights.WEIGHTS).read_bytes() == data
    assert (tmp_path / weights.WEIGHTS).stat().st_mode & 0o777 == packed.stat().st_mode & 0o777  # not owner-only
    assert weights.is_fresh(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.xz"]  # no tmp


def test_newer_xz_is_unpacked_again_and_a_newer_plain_file_is_kept(tmp_path):
    _checkpoint(tmp_path, seed=0)
    weights.pack_weights(tmp_path)
    new = _checkpoint(tmp_path, seed=1)  # a checkpoint trained into the folder after the .xz: kept
    weights.ensure_weights(tmp_path)
    assert (tmp_path / weights.WEIGHTS).read_bytes() == new
    weights.pack_weights(tmp_path)  # ... and packed; then a pull brings an older-looking plain file
    _age(tmp_path / weights.WEIGHTS, 60)
    (tmp_path / weights.WEIGHTS).write_bytes(b"stale")
    _age(tmp_path / weights.WEIGHTS, 60)
    assert not weights.is_fresh(tmp_path)
    assert weights.unpack_all(tmp_path.parent) == [tmp_path]
    assert (tmp_path / weights.WEIGHTS).read_bytes() == new
    assert weights.unpack_all(tmp_path.parent) == []  # nothing left to do


def test_damaged_xz_is_a_sentence_and_leaves_no_half_file(tmp_path):
    _checkpoint(tmp_path)
    packed = weights.pack_weights(tmp_path)
    (tmp_path / weights.WEIGHTS).unlink()
    raw = bytearray(packed.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    packed.write_bytes(bytes(raw))
    with pytest.raises(CorruptModelError, match=r"are damaged .*git checkout --"):
        weights.ensure_weights(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors.xz"]
    packed.write_bytes(bytes(raw[:100]))  # cut short
    with pytest.raises(CorruptModelError, match="are damaged"):
        weights.ensure_weights(tmp_path)


def test_no_room_to_unpack_is_a_sentence(tmp_path, monkeypatch):
    _checkpoint(tmp_path)
    weights.pack_weights(tmp_path)
    (tmp_path / weights.WEIGHTS).unlink()

    def full(src, dst, length=0):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights.shutil, "copyfileobj", full)
    with pytest.raises(ModelUnavailableError, match=r"No space left on device.*xz -dk"):
        weights.ensure_weights(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors.xz"]


def test_pack_without_weights_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train or save the model"):
        weights.pack_weights(tmp_path)


def test_registry_unpacks_a_packed_folder_when_it_is_inspected(tiny_dirs, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_dirs["mamba"], folder)
    data = (folder / weights.WEIGHTS).read_bytes()
    weights.pack_weights(folder)
    (folder / weights.WEIGHTS).unlink()
    family, _ = registry.inspect_folder(folder)
    assert family == "mamba" and (folder / weights.WEIGHTS).read_bytes() == data


def _tracked() -> list[str]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_bundled_weights_are_tracked_packed_and_the_tree_fits_a_gpu_call():
    tracked = set(_tracked())
    for name in ("toy-mamba", "toy-mamba2", "toy-transformer"):
        assert f"assets/models/{name}/model.safetensors.xz" in tracked
        assert f"assets/models/{name}/model.safetensors" not in tracked, "commit the .xz (models --pack-weights)"
    size = sum((ROOT / p).stat().st_size for p in tracked if (ROOT / p).is_file())
    assert size < GPU_CARRY_LIMIT, f"the tracked tree is {size / 2**20:.1f} MiB: a GPU call carries 64 MiB at most"


def test_threads_unpacking_at_once_each_end_with_the_whole_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    data = _checkpoint(tmp_path)
    weights.pack_weights(tmp_path)
    (tmp_path / weights.WEIGHTS).unlink()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: weights.ensure_weights(tmp_path), range(4)))
    assert (tmp_path / weights.WEIGHTS).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.xz"]
