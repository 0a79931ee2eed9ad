"""Which registry models a page may offer on this machine, and why the others are not offered.

Whether the Hugging Face Hub can be reached is decided once per process (backend.models.network), so a
Hugging Face id that is not on disk is offered only where it could download, and is otherwise listed as
unavailable with the registry's sentence (download it elsewhere or add a local folder).

    model_choices() -> Choices(offered=[ModelSpec], unavailable=[(ModelSpec, sentence)])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.models import registry
from backend.models.network import offline
from backend.models.registry import ModelSpec


@dataclass
class Choices:
    offered: list[ModelSpec] = field(default_factory=list)
    unavailable: list[tuple[ModelSpec, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.offered]


def model_choices(specs: list[ModelSpec] | None = None) -> Choices:
    """Split the registry into models that can load here and the rest (with the registry's sentence).
    A Hugging Face id that is not cached is offered only when the Hub can be reached (it downloads)."""
    out = Choices()
    is_offline = None
    for s in registry.list_specs() if specs is None else specs:
        ok, why = registry.availability(s)
        if not ok and s.source == "hf":
            is_offline = offline() if is_offline is None else is_offline
            if not is_offline:
                ok = True  # not on disk yet, but the Hub answers: the first load downloads it
            else:
                ok, why = registry.availability(s)  # the sentence that names HF_HUB_OFFLINE
        if ok:
            out.offered.append(s)
        else:
            out.unavailable.append((s, why))
    return out


def default_selection(choices: Choices) -> list[str]:
    """The default pair (one SSM, one transformer) among the offered models. The bundled hybrid is offered
    beside them but not preselected: it learnt from another recipe than the pair (its model card)."""
    return [n for n in registry.default_pair() if n in choices.names]
