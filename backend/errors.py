"""Errors the UI and the CLI show to people. Every message is one or two sentences: what happened and
what to do about it. Generation errors live in `backend.generation.interface` and are re-exported here."""

from __future__ import annotations

from backend.generation.interface import GenerationError, PromptTooLongError

__all__ = [
    "ModelError",
    "UnknownModelError",
    "ModelUnavailableError",
    "CorruptModelError",
    "GenerationError",
    "PromptTooLongError",
]


class ModelError(RuntimeError):
    """Base class of the model errors below; `str(err)` is a sentence fit for the UI."""


class UnknownModelError(ModelError, KeyError):
    """The name is not in the registry (built-ins plus user-added local folders)."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class ModelUnavailableError(ModelError):
    """The model exists in the registry but its weights are not on this machine (or cannot be fetched)."""


class CorruptModelError(ModelError):
    """A model folder is present but unusable: bad config, unknown model_type, missing weights or tokenizer."""
