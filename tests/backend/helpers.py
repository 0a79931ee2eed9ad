"""Load tiny saved models through the same path users hit (registry entry -> loading -> HFGenerator)."""

from __future__ import annotations

import functools

from backend.models import registry
from backend.models.loading import load_generator


@functools.cache
def _cached(folder: str, name: str):
    spec = registry.ModelSpec(name, registry.inspect_folder(folder)[0], "local", folder)
    return load_generator(spec, device="cpu")


def tiny_generator(tiny_dirs, arch: str):
    """A loaded HFGenerator for the tiny `arch` folder (cached per session: loading is the slow part)."""
    return _cached(str(tiny_dirs[arch]), f"tiny-{arch}")
