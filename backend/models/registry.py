"""Model registry: which models exist, where their weights come from, and whether they are on this machine.

Entries come from three places:
  bundled  the parameter-matched toy trio in `assets/models/<name>/` (served by an untrained placeholder
           from `backend.models.placeholders` until the trained folder exists), and the hybrid `toy-hybrid`
           (listed only once its folder is there: issue 14 bundles it when its checkpoint comes back)
  hf       real Hugging Face ids (Mamba paper pairing: mamba-*-hf with pythia-*), loaded from the local
           Hugging Face cache (or downloaded where the machine has network)
  local    folders the user added; persisted in `<data>/models.json` (`SSM_ARENA_DATA`, default `<repo>/data`)

`availability(spec)` answers without loading anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from filelock import FileLock

from backend.errors import CorruptModelError, UnknownModelError
from backend.models.weights import ensure_weights

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPO_ROOT / "assets" / "models"

# config.json model_type -> family. Anything loadable by AutoModelForCausalLM can be added here.
MODEL_TYPE_FAMILY = {
    "mamba": "mamba",
    "falcon_mamba": "mamba",
    "mamba2": "mamba2",
    "llama": "transformer",
    "gpt_neox": "transformer",
    "gpt2": "transformer",
    "gpt_neo": "transformer",
    "mistral": "transformer",
    "qwen2": "transformer",
    "qwen3": "transformer",
    "phi": "transformer",
    "opt": "transformer",
    "zamba2": "hybrid",
    "jamba": "hybrid",
    "bamba": "hybrid",
}

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. `location`: folder (bundled / local) or Hugging Face repo id (hf)."""

    name: str
    family: str  # mamba | mamba2 | transformer | hybrid
    source: str  # bundled | local | hf
    location: str
    dtype: str = "auto"
    paired_with: str | None = None
    description: str = ""
    placeholder: bool = False  # True while a bundled entry is served by an untrained placeholder
    train_context: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def data_dir() -> Path:
    return Path(os.environ.get("SSM_ARENA_DATA") or REPO_ROOT / "data")


def _local_file() -> Path:
    return data_dir() / "models.json"


def models_root() -> Path:
    """The only folder the dashboard may add models from (its subfolders): SSM_ARENA_MODELS_ROOT, default
    `<data>/models`. The CLI (`models --add`) has no such limit: whoever runs it can read the files anyway."""
    env = os.environ.get("SSM_ARENA_MODELS_ROOT")
    return (Path(env).expanduser() if env else data_dir() / "models").resolve()


def folder_under_root(folder: str | Path, root: Path) -> Path:
    """`folder` (relative to `root`, or absolute) resolved, symlinks too; one sentence for any folder outside
    `root`, so the page never says whether a path elsewhere on the server exists."""
    path = Path(folder)
    if str(path).startswith("~"):
        path = path.expanduser()
    resolved = (root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise CorruptModelError(
            f"Only folders inside {root} can be added here. Copy the model folder there (or set "
            "SSM_ARENA_MODELS_ROOT before starting the dashboard) and give its name, or add it from a terminal "
            "with `python -m backend models --add FOLDER`.")
    return resolved


_TOY = {
    "toy-mamba": ("mamba", "toy-transformer", "Mamba trained on the toy-world corpus (bundled)."),
    "toy-mamba2": ("mamba2", "toy-transformer", "Mamba-2 trained on the toy-world corpus (bundled)."),
    "toy-transformer": ("transformer", "toy-mamba",
                        "Llama-style transformer trained on the toy-world corpus (bundled)."),
}

# bundled families listed only when their folder is there (no placeholder stands in for them)
_TOY_OPTIONAL = {
    "toy-hybrid": ("hybrid", "toy-transformer",
                   "Bamba hybrid (Mamba-2 layers with two attention layers) trained on the toy-world corpus (bundled)."),
}

# Mamba paper pairing: same Pile data and GPT-NeoX tokenizer. Both were trained with 2048-token contexts.
_HF_PAIRS = [("130m", "160m"), ("370m", "410m"), ("790m", "1b"), ("1.4b", "1.4b"), ("2.8b", "2.8b")]


def _builtin_specs() -> list[ModelSpec]:
    specs = []
    for name, (family, pair, desc) in {**_TOY, **_TOY_OPTIONAL}.items():
        if name in _TOY or (BUNDLED_DIR / name / "config.json").is_file():
            specs.append(ModelSpec(name, family, "bundled", str(BUNDLED_DIR / name), paired_with=pair,
                                   description=desc))
    for m, p in _HF_PAIRS:
        mname, pname = f"state-spaces/mamba-{m}-hf", f"EleutherAI/pythia-{p}"
        specs.append(ModelSpec(mname, "mamba", "hf", mname, paired_with=pname, train_context=2048,
                               description=f"Mamba {m} trained on the Pile (state-spaces)."))
        specs.append(ModelSpec(pname, "transformer", "hf", pname, paired_with=mname, train_context=2048,
                               description=f"Pythia {p} transformer trained on the Pile (EleutherAI)."))
    specs.append(ModelSpec("AntonV/mamba2-130m-hf", "mamba2", "hf", "AntonV/mamba2-130m-hf",
                           paired_with="EleutherAI/pythia-160m", train_context=2048,
                           description="Mamba-2 130m (state-spaces/mamba2-130m converted for Mamba2ForCausalLM)."))
    return specs


def _bundled_view(spec: ModelSpec) -> ModelSpec:
    """Fill in placeholder / train_context for a bundled entry from what is on disk right now."""
    folder = Path(spec.location)
    if not (folder / "config.json").is_file():
        return replace(spec, placeholder=True,
                       description=spec.description + " Untrained placeholder until the trained weights exist.")
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return spec
    return replace(spec, train_context=train_context_of(folder, cfg))


def train_summary(folder: str | Path) -> dict:
    """The trainer's train_summary.json of a model folder; {} when it is absent or unreadable."""
    try:
        summary = json.loads((Path(folder) / "train_summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def train_context_of(folder: Path, cfg: dict) -> int | None:
    """Training sequence length of a model folder: config "train_context", else the trainer's
    train_summary.json (config.seq_len), else max_position_embeddings (transformers)."""
    ctx = cfg.get("train_context")
    if not ctx:
        trainer_cfg = train_summary(folder).get("config")
        ctx = trainer_cfg.get("seq_len") if isinstance(trainer_cfg, dict) else None
    ctx = ctx or cfg.get("max_position_embeddings")
    try:
        return int(ctx) if ctx else None
    except (TypeError, ValueError):
        return None


def _read_local() -> list[ModelSpec]:
    path = _local_file()
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for r in rows if isinstance(rows, list) else []:
        try:
            out.append(ModelSpec(**{**r, "source": "local"}))
        except TypeError:
            continue  # a row written by another version; skip it rather than break the page
    return out


def list_specs() -> list[ModelSpec]:
    """Built-ins first (bundled, then hf), then user-added local folders."""
    specs = [_bundled_view(s) if s.source == "bundled" else s for s in _builtin_specs()]
    names = {s.name for s in specs}
    specs += [s for s in _read_local() if s.name not in names]
    return specs


def get_spec(name: str) -> ModelSpec:
    for s in list_specs():
        if s.name == name:
            return s
    known = ", ".join(s.name for s in list_specs()[:6])
    raise UnknownModelError(
        f"There is no model named '{name}'. Pick one from the Models page (e.g. {known}) or add a local folder there."
    )


def default_pair() -> tuple[str, str]:
    return ("toy-mamba", "toy-transformer")


def inspect_folder(folder: str | Path) -> tuple[str, dict]:
    """Validate a model folder; return (family, config dict). Raises CorruptModelError with a specific sentence."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CorruptModelError(f"The folder '{folder}' does not exist. Check the path and try again.")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CorruptModelError(
            f"The folder '{folder}' has no config.json, so it is not a Hugging Face model folder. "
            "Point to the folder that save_pretrained() wrote.")
    try:
        cfg = json.loads(cfg_path.read_text())
        if not isinstance(cfg, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        raise CorruptModelError(
            f"config.json in '{folder}' could not be parsed ({e}). Re-save the model with save_pretrained().") from e
    model_type = cfg.get("model_type")
    family = MODEL_TYPE_FAMILY.get(model_type)
    if family is None:
        raise CorruptModelError(
            f"config.json in '{folder}' has model_type '{model_type}', which this dashboard does not know. "
            f"Supported: {', '.join(sorted(MODEL_TYPE_FAMILY))}.")
    ensure_weights(folder)  # a bundled folder's model.safetensors.xz, unpacked once (backend.models.weights)
    if not any((folder / f).is_file() for f in WEIGHT_FILES) and not list(folder.glob("*.safetensors")):
        raise CorruptModelError(
            f"The folder '{folder}' has no weights (model.safetensors or pytorch_model.bin). "
            "Copy the weight files next to config.json.")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise CorruptModelError(
            f"The folder '{folder}' has no tokenizer files (tokenizer.json or tokenizer_config.json). "
            "Save the tokenizer into the same folder (tokenizer.save_pretrained(folder)).")
    return family, cfg


def add_local_model(folder: str | Path, name: str | None = None, root: Path | None = None) -> ModelSpec:
    """Validate `folder` and remember it in models.json. Re-adding the same folder updates its entry.
    With `root` (the dashboard: models_root()) the folder must lie inside it (folder_under_root)."""
    folder = folder_under_root(folder, root) if root is not None else Path(folder).expanduser().resolve()
    family, cfg = inspect_folder(folder)
    name = (name or folder.name).strip()
    if not name:
        raise CorruptModelError("The model needs a name. Type one next to the folder path.")
    if any(s.name == name for s in _builtin_specs()):
        raise CorruptModelError(f"'{name}' is the name of a built-in model. Choose another name for this folder.")
    spec = ModelSpec(name, family, "local", str(folder), train_context=train_context_of(folder, cfg),
                     description=f"Local folder {folder} ({cfg.get('model_type')}).")
    path = _local_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        rows = [s.to_dict() for s in _read_local() if s.name != name]
        rows.append(spec.to_dict())
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        os.replace(tmp, path)
    return spec


def remove_local_model(name: str) -> None:
    path = _local_file()
    if not any(s.name == name for s in _read_local()):
        raise UnknownModelError(f"There is no user-added model named '{name}'.")
    with FileLock(str(path) + ".lock", timeout=30):
        rows = [s.to_dict() for s in _read_local() if s.name != name]
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        os.replace(tmp, path)


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hf_cached(repo_id: str) -> bool:
    """True when config.json and weights of `repo_id` are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    def have(fname: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(repo_id, fname), str)
        except Exception:  # malformed ids, unreadable cache: not available
            return False

    return have("config.json") and any(have(f) for f in WEIGHT_FILES)


def availability(spec: ModelSpec) -> tuple[bool, str]:
    """(ok, sentence) without loading anything."""
    if spec.source == "bundled":
        if spec.placeholder:
            return True, (f"'{spec.name}' is not trained yet on this checkout; an untrained placeholder with random "
                          "weights is served instead (its text is gibberish).")
        return True, f"Bundled with the dashboard ({spec.location})."
    if spec.source == "local":
        try:
            inspect_folder(spec.location)
        except CorruptModelError as e:
            return False, str(e)
        return True, f"Local folder {spec.location}."
    if hf_cached(spec.location):
        return True, "In the local Hugging Face cache."
    if hf_offline():
        return False, (
            f"Model '{spec.location}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. Download it "
            f"on a machine with network (huggingface-cli download {spec.location}) or add a local folder on the Models page.")
    return False, (
        f"Model '{spec.location}' is not downloaded yet; loading it will download it from the Hugging Face Hub, "
        f"which needs network (or run huggingface-cli download {spec.location} first).")
