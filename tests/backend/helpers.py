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


def build_tiny_hybrid(folder, layers: int = 3, attn: tuple[int, ...] = (1,), groups: int = 1,
                      max_positions: int = 512, perturb: bool = False):
    """Save a tiny BambaForCausalLM (width 32, attention at `attn`, Mamba-2 elsewhere: 4 heads x 16, d_state 8,
    conv 4; 2 KV heads) with random weights (seed 0) and the placeholders' tokenizer into `folder`. `perturb`
    moves A, D, dt and the conv bias off their initial values. Returns the folder."""
    import torch
    from transformers import BambaConfig, BambaForCausalLM

    from backend.models.placeholders import build_tokenizer

    tok = build_tokenizer()
    cfg = BambaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers, attn_layer_indices=list(attn),
                      intermediate_size=48, num_attention_heads=4, num_key_value_heads=2, mamba_n_heads=4,
                      mamba_d_head=16, mamba_n_groups=groups, mamba_d_state=8, mamba_expand=2, mamba_d_conv=4,
                      mamba_chunk_size=16, max_position_embeddings=max_positions, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = BambaForCausalLM(cfg)
    if perturb:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("A_log", "D", "dt_bias", "conv1d.bias")):
                    p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
