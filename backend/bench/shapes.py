"""Model shapes for the benchmark and the SSM/transformer pairs it compares.

Random weights in the real shapes (no download): the configs below copy the published checkpoints'
dimensions (state-spaces/mamba-*-hf, mamba2-130m, EleutherAI/pythia-*). Speed and memory depend on the
shape, not on the weights. `max_position_embeddings` is raised on the transformer shapes so that long
prompts can be timed (rotary embeddings have no learned limit; the output is meaningless either way).

Bundled models (`toy-*`) are loaded from `assets/models/<name>` when those folders exist. Any other name is
looked up in the model registry: a local folder added there (`python -m backend models --add FOLDER`), e.g.
a hybrid (family "hybrid": Bamba, Mamba-2 layers plus a few attention layers), is benchmarked from that
folder with its own weights (`Shape.folder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LONG_CONTEXT = 1 << 20  # max_position_embeddings given to random-weight transformer shapes


def bundled_folder(name: str) -> Path:
    return REPO / "assets" / "models" / name


@dataclass(frozen=True)
class Shape:
    name: str
    family: str  # "mamba" | "mamba2" | "transformer" | "hybrid"
    config_cls: str  # transformers config class name ("" for bundled folders)
    kwargs: tuple = ()  # config kwargs as (key, value) pairs (hashable)
    bundled: bool = False
    folder: str = ""  # a registered local model's folder (weights loaded from there)

    @property
    def weights(self) -> str:
        """What the rows say about the weights: "bundled", "local" (a registered folder) or "random"."""
        return "bundled" if self.bundled else "local" if self.folder else "random"

    def config(self):
        import transformers

        return getattr(transformers, self.config_cls)(**dict(self.kwargs))


def _kw(**kw) -> tuple:
    return tuple(sorted(kw.items()))


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in [
        Shape("mamba-130m", "mamba", "MambaConfig",
              _kw(vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4)),
        Shape("mamba2-130m", "mamba2", "Mamba2Config",
              _kw(vocab_size=50288, hidden_size=768, num_hidden_layers=24, state_size=128, expand=2, head_dim=64,
                  num_heads=24, n_groups=1, conv_kernel=4, chunk_size=256)),
        Shape("pythia-160m", "transformer", "GPTNeoXConfig",
              _kw(vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, rotary_pct=0.25, max_position_embeddings=LONG_CONTEXT)),
        Shape("mamba-1.4b", "mamba", "MambaConfig",
              _kw(vocab_size=50280, hidden_size=2048, num_hidden_layers=48, state_size=16, expand=2, conv_kernel=4)),
        Shape("pythia-1.4b", "transformer", "GPTNeoXConfig",
              _kw(vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=8192, rotary_pct=0.25, max_position_embeddings=LONG_CONTEXT)),
        Shape("toy-mamba", "mamba", "", bundled=True),
        Shape("toy-mamba2", "mamba2", "", bundled=True),
        Shape("toy-transformer", "transformer", "", bundled=True),
        Shape("toy-hybrid", "hybrid", "", bundled=True),  # in the "toy" preset once bundled (see PRESETS)
    ]
}

# (ssm, transformer) pairs of matched size; the page compares each SSM with its partner.
PAIRS: list[tuple[str, str]] = [
    ("mamba-130m", "pythia-160m"),
    ("mamba2-130m", "pythia-160m"),
    ("mamba-1.4b", "pythia-1.4b"),
    ("toy-mamba", "toy-transformer"),
    ("toy-mamba2", "toy-transformer"),
    ("toy-hybrid", "toy-transformer"),
]

PRESETS: dict[str, list[str]] = {
    "130m": ["pythia-160m", "mamba-130m", "mamba2-130m"],
    "1.4b": ["pythia-1.4b", "mamba-1.4b"],
    "toy": ["toy-transformer", "toy-mamba", "toy-mamba2"]
           + (["toy-hybrid"] if (bundled_folder("toy-hybrid") / "config.json").is_file() else []),
}


def _unknown(name: str, known) -> ValueError:
    return ValueError(
        f"Unknown benchmark model {name!r}. Choose from {', '.join(known)}, a preset ({', '.join(PRESETS)}), or "
        "the name of a local model folder added with `python -m backend models --add FOLDER`.")


def registered_shape(name: str, known=None) -> Shape:
    """The shape of a local folder in the model registry (backend.models.registry), by its name; ValueError
    (one sentence) for a name the registry does not know or one it serves from the Hugging Face Hub."""
    from backend.errors import UnknownModelError
    from backend.models import registry

    try:
        spec = registry.get_spec(name)
    except UnknownModelError:
        raise _unknown(name, SHAPES if known is None else known) from None
    if spec.source != "local":
        raise ValueError(f"{name!r} is a {spec.source} model of the registry; the benchmark runs random-weight "
                         f"shapes ({', '.join(SHAPES)}) and local folders only. Download it and add the folder "
                         "with `python -m backend models --add FOLDER`.")
    return Shape(spec.name, spec.family, "", folder=str(spec.location))


def get_shape(name: str) -> Shape:
    return SHAPES[name] if name in SHAPES else registered_shape(name)


def resolve_shapes(names: list[str], shapes: dict[str, Shape] | None = None) -> dict[str, Shape]:
    """`shapes` (default SHAPES) plus the registered local models among `names`; ValueError for an unknown name."""
    out = dict(shapes or SHAPES)
    for name in names:
        if name not in out:
            out[name] = registered_shape(name, known=list(out))
    return out


def expand_models(names: list[str]) -> list[str]:
    """Expand presets ("130m", "1.4b", "toy", "all") into shape names, keeping order, no duplicates."""
    out: list[str] = []
    for n in names:
        group = [s for p in PRESETS.values() for s in p] if n == "all" else PRESETS.get(n, [n])
        for s in group:
            get_shape(s)
            if s not in out:
                out.append(s)
    return out


def partner_of(name: str, run: dict[str, str] | None = None) -> str | None:
    """The transformer `name` is compared with: its PAIRS partner, else (a local model, e.g. a retrained
    `ctx-s0-toy-hybrid`) the transformer of the same run (`run`: {model: family}) whose name shares the longest
    prefix with it (`ctx-s0-toy-transformer`: same recipe and seed), the shorter name on a tie (the plain
    transformer before its depth-matched `-deep` variant); None for a transformer or a model with no partner."""
    for ssm, tf in PAIRS:
        if name == ssm:
            return tf
    run = run or {}
    if run.get(name, "transformer") == "transformer":
        return None
    candidates = [m for m, fam in run.items() if fam == "transformer"]
    if not candidates:
        return None
    return max(candidates, key=lambda m: (len(os.path.commonprefix([m, name])), -len(m)))
