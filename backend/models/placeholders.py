"""Untrained placeholder models for the bundled trio, used until the trained folders exist.

`placeholder_folder(name)` builds (once, in a few seconds on CPU) a tiny randomly initialised model in
`<data>/placeholder_models/<name>/` and returns the folder. The UI labels these "untrained placeholder":
their text is gibberish, but every page (streaming, metrics, cache growth) works on them.
`build_tiny(arch, folder)` is the same builder, also used by tests to make tiny Mamba / Mamba-2 / Llama /
GPT-NeoX folders that load through the user path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from backend.models.registry import data_dir

PLACEHOLDER_ARCH = {"toy-mamba": "mamba", "toy-mamba2": "mamba2", "toy-transformer": "llama"}

_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A state space model keeps a fixed size state while it reads the text.",
    "The transformer looks back at every earlier token through attention.",
    "Question: what is 12 plus 30? Answer: 42.",
    "Alice gave the red box to Bob, and Bob put it on the shelf.",
    "In the village of Ashford the market opens at 7 and closes at 19.",
    "Passkey: 58213. Remember it, the passkey is 58213.",
    "Once upon a time there was a small robot who liked to count: 1, 2, 3, 4, 5, 6, 7, 8, 9, 0.",
    "Context: the river flows north. Q: which way does the river flow? A: north.",
    "def add(a, b):\n    return a + b\n",
]
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def build_tokenizer(vocab_size: int = 384):
    """A tiny byte-level BPE (digits split into single characters), wrapped as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_SENTENCES * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)


def tiny_config(arch: str, vocab_size: int, special_ids: dict, max_positions: int = 2048):
    """Config of a tiny model of `arch` (mamba | mamba2 | llama | gpt_neox): 2 layers, width 64."""
    from transformers import GPTNeoXConfig, LlamaConfig, Mamba2Config, MambaConfig

    common = dict(vocab_size=vocab_size, num_hidden_layers=2, hidden_size=64, **special_ids)
    if arch == "mamba":
        return MambaConfig(state_size=16, expand=2, conv_kernel=4, **common)
    if arch == "mamba2":  # num_heads * head_dim == expand * hidden_size
        return Mamba2Config(state_size=16, expand=2, num_heads=8, head_dim=16, n_groups=1, conv_kernel=4,
                            chunk_size=32, **common)
    if arch == "llama":
        return LlamaConfig(intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=max_positions, tie_word_embeddings=True, **common)
    if arch == "gpt_neox":
        return GPTNeoXConfig(intermediate_size=128, num_attention_heads=4, max_position_embeddings=max_positions,
                             **common)
    raise ValueError(f"unknown tiny arch {arch!r}")


def build_tiny(arch: str, folder: str | Path, seed: int = 0, max_positions: int = 2048) -> Path:
    """Save a tiny randomly initialised `arch` model plus the tiny tokenizer into `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    cfg = tiny_config(arch, len(tok), ids, max_positions)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def placeholder_folder(name: str) -> Path:
    """Folder of the placeholder for bundled model `name`, built once (atomically, process-safe)."""
    arch = PLACEHOLDER_ARCH[name]
    root = data_dir() / "placeholder_models"
    target = root / name
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock"), timeout=300):
        if (target / "config.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build_tiny(arch, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
