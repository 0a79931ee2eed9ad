"""Pack a bundled model folder into one .tar.gz (to move it between machines) and unpack it again. The weights go
in as model.safetensors.xz, the form a bundled folder tracks (backend/models/weights.py): an 8M-parameter
checkpoint's archive is ~11 MB instead of ~15, under the 16 MiB a GPU call returns per file.

    python -m backend toyworld pack toy-mamba            # -> toy-mamba.tar.gz in the current folder
    python -m backend toyworld unpack toy-mamba.tar.gz   # -> assets/models/toy-mamba/
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from backend.models.weights import PACKED, WEIGHTS, pack_weights

MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"


def pack(name_or_folder: str, out: str | Path | None = None) -> Path:
    """Write <name>.tar.gz holding the folder's files under <name>/; returns the archive path."""
    folder = Path(name_or_folder)
    if not folder.is_dir():
        folder = MODELS_DIR / name_or_folder
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"No model folder with a config.json at {folder}. Give a bundled model name "
                                f"(a folder of {MODELS_DIR}) or a path to a model folder.")
    out = Path(out) if out else Path(f"{folder.name}.tar.gz")
    if out.is_dir():
        out = out / f"{folder.name}.tar.gz"
    if (folder / WEIGHTS).is_file():  # packed afresh every time (~10 s for 16 MB): it then holds these weights
        pack_weights(folder)
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.name != WEIGHTS and not f.name.startswith("."):  # the weights go in as the .xz
                tar.add(f, arcname=f"{folder.name}/{f.name}")
    return out


def unpack(archive: str | Path, dest: str | Path | None = None) -> Path:
    """Extract an archive made by `pack` into dest (default assets/models); returns the model folder."""
    archive, dest = Path(archive), Path(dest) if dest else MODELS_DIR
    if not archive.exists():
        raise FileNotFoundError(f"No archive at {archive}.")
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        tops = {Path(m.name).parts[0] for m in members}
        bad = [m.name for m in members if not m.isfile() or len(Path(m.name).parts) != 2 or ".." in m.name]
        if len(tops) != 1 or bad:
            raise ValueError(f"{archive} is not a model archive made by `pack` (one folder of plain files).")
        dest.mkdir(parents=True, exist_ok=True)
        tar.extractall(dest, filter="data")
    folder = dest / tops.pop()
    if any(Path(m.name).name == PACKED for m in members):  # weights unpacked from an earlier archive are stale
        (folder / WEIGHTS).unlink(missing_ok=True)
    return folder
