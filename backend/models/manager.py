"""ModelManager: load each model once per process and hand out its Generator (thread-safe).

The UI keeps one manager per process (`st.cache_resource`); the CLI and experiments make their own.
With `SSM_ARENA_FAKE=1` every registry name is served by a FakeGenerator (instant, no torch model), so UI
tests never load weights; `SSM_ARENA_FAKE_DELAY` (seconds per token, default 0) makes fake streaming visible.
"""

from __future__ import annotations

import os
import threading

from backend.generation.interface import Generator, ModelInfo
from backend.models import registry

UNLOAD_WAIT_S = 60.0


def fake_mode() -> bool:
    return os.environ.get("SSM_ARENA_FAKE", "").strip().lower() in ("1", "true", "yes", "on")


class ModelManager:
    def __init__(self, fake: bool | None = None) -> None:
        self.fake = fake_mode() if fake is None else fake
        self._lock = threading.Lock()  # guards the dicts below, never held while loading
        self._models: dict[tuple[str, str], Generator] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def _resolve_device(self, device: str) -> str:
        if self.fake:
            return "cpu"
        from backend.device import resolve_device  # torch: never imported by the fake backend (UI tests)

        return str(resolve_device(device))

    def get(self, name: str, device: str = "auto") -> Generator:
        """The loaded Generator for `name` on `device`, loading it on first use.

        Raises UnknownModelError, ModelUnavailableError or CorruptModelError (messages fit for the UI).
        Two threads asking for the same model at once load it once; different models load in parallel.
        """
        spec = registry.get_spec(name)
        key = (name, self._resolve_device(device))
        with self._lock:
            gen = self._models.get(key)
            if gen is not None:
                return gen
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                gen = self._models.get(key)
            if gen is None:
                gen = self._load(spec, key[1])
                with self._lock:
                    self._models[key] = gen
        return gen

    def _load(self, spec: registry.ModelSpec, device: str) -> Generator:
        if self.fake:
            from backend.models.fake import FakeGenerator

            delay = float(os.environ.get("SSM_ARENA_FAKE_DELAY", "0") or 0)
            return FakeGenerator(spec.name, spec.family, delay_s=delay, placeholder=spec.placeholder)
        from backend.models.loading import load_generator

        return load_generator(spec, device=device)

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return any(n == name for n, _ in self._models)

    def loaded(self) -> list[ModelInfo]:
        with self._lock:
            return [g.info for g in self._models.values()]

    def unload(self, name: str) -> bool:
        """Forget every loaded copy of `name` (waits for a running generation on it); True if any was loaded."""
        with self._lock:
            keys = [k for k in self._models if k[0] == name]
            gens = [self._models.pop(k) for k in keys]
        for g in gens:  # let an in-flight generation finish before the weights go (bounded wait)
            if g.lock.acquire(timeout=UNLOAD_WAIT_S):
                g.lock.release()
        if gens and not self.fake:
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass
        return bool(gens)
