"""Bundled checkpoints' weights: tracked xz-compressed, unpacked beside themselves on first use.

    assets/models/<name>/model.safetensors.xz   what git tracks (standard .xz: `xz -dk` opens it too)
    assets/models/<name>/model.safetensors      unpacked on first use, git-ignored; the folder is then a plain
                                                Hugging Face folder again (`from_pretrained(folder)`)

    python -m backend models --unpack-weights            # every bundled folder (scripts/setup.sh runs it)
    python -m backend models --pack-weights FOLDER       # write FOLDER/model.safetensors.xz to commit

Why: the tracked tree is what a GPU call carries, capped at 64 MiB, and three bf16 checkpoints of ~16 MB took
63 MB of it, leaving no room for a fourth family. xz (LZMA2 with lc=1, lp=1, pb=1: literals and matches aligned
to the weights' 2-byte values) stores them in 67% of the bytes, losslessly (the stream's CRC64 is checked on
every unpack), and unpacks one in ~0.6 s on the 2-core CPU. The standard library's `lzma` does it; safetensors
has no compressed form.

Freshness: an unpacked file older than its .xz (a `git pull` brought new weights) is unpacked again; one newer
(a checkpoint trained into the folder) is kept, and `--pack-weights` turns it into the .xz to commit.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path

from backend.errors import CorruptModelError, ModelUnavailableError

WEIGHTS = "model.safetensors"
PACKED = WEIGHTS + ".xz"
# LZMA2 at preset 9e, with literal and match positions aligned to 2 bytes (bf16 / fp16 values)
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 1, "lp": 1, "pb": 1}]


def is_fresh(folder: str | Path) -> bool:
    """True when folder's weights need no unpacking: no .xz there, or the unpacked file is at least as new."""
    folder = Path(folder)
    packed, plain = folder / PACKED, folder / WEIGHTS
    if not packed.is_file():
        return True
    return plain.is_file() and plain.stat().st_mtime >= packed.stat().st_mtime


def ensure_weights(folder: str | Path) -> Path:
    """Unpack folder/model.safetensors.xz into folder/model.safetensors unless that is already there and fresh
    (`is_fresh`); returns the folder. Written to a temporary file and renamed, so a process that reads the
    folder meanwhile never sees half a file, and two processes unpacking at once both end with the whole one.
    Raises CorruptModelError (a damaged .xz) or ModelUnavailableError (no room or no write access), as sentences.
    """
    folder = Path(folder)
    if is_fresh(folder):
        return folder
    packed, plain = folder / PACKED, folder / WEIGHTS
    tmp = None
    try:  # a name of its own per call: two threads of one process (two dashboard sessions) may unpack at once
        fd, name = tempfile.mkstemp(prefix=f".{WEIGHTS}.", suffix=".tmp", dir=folder)
        tmp = Path(name)
        with lzma.open(packed, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        os.chmod(tmp, packed.stat().st_mode & 0o777)  # readable as the .xz is (mkstemp makes it owner-only)
        os.replace(tmp, plain)
    except (lzma.LZMAError, EOFError) as e:
        raise CorruptModelError(
            f"The bundled weights {packed} are damaged ({e}). Restore them with `git checkout -- {packed}` "
            "and start again.") from e
    except OSError as e:
        raise ModelUnavailableError(
            f"Could not unpack {packed} into {folder} ({e.strerror or e}). Free some disk space or make the folder "
            f"writable, then start again (or unpack it by hand: xz -dk {packed}).") from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return folder


def unpack_all(root: str | Path) -> list[Path]:
    """ensure_weights for every model folder under root holding a .xz; returns the folders unpacked now."""
    done = []
    for packed in sorted(Path(root).glob(f"*/{PACKED}")):
        if not is_fresh(packed.parent):
            done.append(ensure_weights(packed.parent))
    return done


def pack_weights(folder: str | Path) -> Path:
    """Write folder/model.safetensors.xz from folder/model.safetensors (kept); returns the .xz path. The result
    is unpacked again and compared byte for byte before it replaces an older .xz."""
    folder = Path(folder)
    plain = folder / WEIGHTS
    if not plain.is_file():
        raise FileNotFoundError(f"No {WEIGHTS} in {folder}: train or save the model into that folder first.")
    packed = folder / PACKED
    fd, name = tempfile.mkstemp(prefix=f".{PACKED}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(name)
    data = plain.read_bytes()
    try:
        blob = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=FILTERS)
        if lzma.decompress(blob) != data:  # never commit a .xz that does not give the weights back
            raise RuntimeError(f"The .xz made from {plain} did not unpack to it; nothing was written.")
        tmp.write_bytes(blob)
        os.chmod(tmp, plain.stat().st_mode & 0o777)
        os.replace(tmp, packed)
    finally:
        tmp.unlink(missing_ok=True)
    os.utime(plain)  # the unpacked file stays the fresh one (is_fresh)
    return packed


def param_count(folder: str | Path) -> int | None:
    """Parameters in folder's safetensors files, from their headers (8-byte length + JSON) without loading any
    weights; read from model.safetensors.xz when nothing is unpacked yet (only the header is decompressed).
    None when there are no weights or a header cannot be read."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files and (folder / PACKED).is_file():
        files = [folder / PACKED]
    total = 0
    for f in files:
        try:
            with (lzma.open(f, "rb") if f.suffix == ".xz" else f.open("rb")) as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, ValueError, EOFError, lzma.LZMAError, struct.error):
            return None
        for k, v in header.items():
            if k != "__metadata__":
                total += math.prod(int(d) for d in v.get("shape", []))
    return total or None
