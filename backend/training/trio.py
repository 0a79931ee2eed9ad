"""Model definitions of the bundled toy families: standard Hugging Face classes, parameter-matched.

    toy-mamba             MambaForCausalLM   d=256, 16 layers, d_state 16, expand 2                   ~8.06M
    toy-mamba2            Mamba2ForCausalLM  d=256, 16 layers, d_state 64, 8 heads x 64                ~7.96M
    toy-transformer       LlamaForCausalLM   d=256,  8 layers, 4 heads x 64, MLP 768                   ~7.87M
    toy-hybrid            BambaForCausalLM   d=256, 10 layers (attention at 3 and 7, Mamba-2 in the
                                             other 8), every layer with an MLP of 384                  ~7.98M
    toy-transformer-deep  LlamaForCausalLM   d=192, 16 layers (the SSMs' depth), 3 heads x 64, MLP 512 ~7.87M

MODEL_NAMES is the trio bundled today; FAMILIES_ALL adds the hybrid and the depth-matched transformer (issue
14: a hybrid fourth family, and a transformer as deep as the SSMs so an arithmetic or recall gap cannot be a
depth artefact). The hybrid follows Bamba / Jamba (Mamba-2 layers with a few attention layers, roughly one in
four to one in seven; Jamba, 2024; An Empirical Study of Mamba-based Language Models, 2024).

The transformers train at 1,024 tokens (and the long phase of a curriculum); max_position_embeddings is 4x the
training context (RoPE, nothing learned per position) so the long-context experiment can test extrapolation.

Mamba-2's chunk_size is 32, not the usual 256: it only sets how transformers' PyTorch SSD splits the scan (the
result is the same for any chunk size), and that path materialises a (batch, L, chunk, heads, d_state) tensor,
which at 256 made a training step 4x slower than Mamba-1's (1.6 s vs 0.4 s at batch 16 on an H100).
All use initializer_range 0.02 (the Mamba reference init; transformers defaults Mamba to 0.1).
Two Mamba layers per transformer layer, as in the Mamba paper (a Mamba block has ~half the parameters of an
attention + MLP block). Embeddings are tied; vocabulary 4096 (the shared toy-world tokenizer). Stored in
bf16 each small checkpoint is under 16 MiB.

Presets: "small" is the bundled size; "medium" (~29M) and "large" (~110M) are the size ladder of issue 14
(trained at equal tokens, results committed, checkpoints not); "tiny" is every family shrunk for CPU tests.
The ladder grows width only (256, 512, 1,024), at the same depths: at these sizes a training step on an H100 is
bound by per-layer overhead, not FLOPs (medium Mamba 184 ms a step against small's 186, 2026-12-08), so depth
sets the time, and a whole run has to fit one 10-minute GPU call (a 24-layer large would not: ~1.5x medium's).
tests/backend/training/test_families.py checks that the families of each preset are within 10% of each other.
"""

from __future__ import annotations

MODEL_NAMES = ("toy-mamba", "toy-mamba2", "toy-transformer")  # bundled in assets/models today
FAMILIES_ALL = MODEL_NAMES + ("toy-hybrid", "toy-transformer-deep")  # every family that trains
FAMILY = {"toy-mamba": "mamba", "toy-mamba2": "mamba2", "toy-transformer": "transformer", "toy-hybrid": "hybrid",
          "toy-transformer-deep": "transformer"}

# d: width; ssm_layers / attn_layers: depth of the SSMs / the transformer; heads, mlp: the transformer's;
# m2_heads: Mamba-2 heads (x 2d/m2_heads); hyb_*: the hybrid (layers, attention layer indices, MLP width);
# deep_*: the depth-matched transformer (width, heads, MLP; depth = ssm_layers).
PRESETS: dict[str, dict] = {
    "small": {"d": 256, "ssm_layers": 16, "attn_layers": 8, "heads": 4, "mlp": 768, "m2_heads": 8,
              "m1_state": 16, "m2_state": 64, "chunk": 32, "hyb_layers": 10, "hyb_attn": [3, 7], "hyb_mlp": 384,
              "deep_d": 192, "deep_heads": 3, "deep_mlp": 512},
    "medium": {"d": 512, "ssm_layers": 16, "attn_layers": 8, "heads": 8, "mlp": 1536, "m2_heads": 16,
               "m1_state": 16, "m2_state": 64, "chunk": 32, "hyb_layers": 10, "hyb_attn": [3, 7], "hyb_mlp": 768,
               "deep_d": 384, "deep_heads": 6, "deep_mlp": 1024},
    "large": {"d": 1024, "ssm_layers": 16, "attn_layers": 8, "heads": 16, "mlp": 3072, "m2_heads": 32,
              "m1_state": 16, "m2_state": 64, "chunk": 32, "hyb_layers": 10, "hyb_attn": [3, 7], "hyb_mlp": 1536,
              "deep_d": 768, "deep_heads": 12, "deep_mlp": 2048},
    "tiny": {"d": 32, "ssm_layers": 2, "attn_layers": 1, "heads": 2, "mlp": 96, "m2_heads": 4,
             "m1_state": 4, "m2_state": 8, "chunk": 16, "hyb_layers": 2, "hyb_attn": [1], "hyb_mlp": 48,
             "deep_d": 32, "deep_heads": 2, "deep_mlp": 48},
}


def model_config(name: str, preset: str = "small", vocab_size: int = 4096, context: int = 1024,
                 bos_id: int = 0, eos_id: int = 0, pad_id: int = 1):
    """The Hugging Face config of one model family at one preset."""
    from transformers import BambaConfig, LlamaConfig, Mamba2Config, MambaConfig

    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}.")
    p = PRESETS[preset]
    common = dict(vocab_size=vocab_size, hidden_size=p["d"], tie_word_embeddings=True, initializer_range=0.02,
                  bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    if name == "toy-mamba":
        return MambaConfig(num_hidden_layers=p["ssm_layers"], state_size=p["m1_state"], expand=2, conv_kernel=4,
                           use_mambapy=True, **common)
    if name == "toy-mamba2":
        return Mamba2Config(num_hidden_layers=p["ssm_layers"], state_size=p["m2_state"], expand=2,
                            num_heads=p["m2_heads"], head_dim=2 * p["d"] // p["m2_heads"], n_groups=1,
                            conv_kernel=4, chunk_size=p["chunk"], **common)
    if name == "toy-transformer":
        return LlamaConfig(num_hidden_layers=p["attn_layers"], num_attention_heads=p["heads"],
                           num_key_value_heads=p["heads"], intermediate_size=p["mlp"],
                           max_position_embeddings=4 * context, **common)
    if name == "toy-hybrid":
        return BambaConfig(num_hidden_layers=p["hyb_layers"], attn_layer_indices=list(p["hyb_attn"]),
                           intermediate_size=p["hyb_mlp"], num_attention_heads=p["heads"],
                           num_key_value_heads=p["heads"], mamba_n_heads=p["m2_heads"],
                           mamba_d_head=2 * p["d"] // p["m2_heads"], mamba_n_groups=1, mamba_d_state=p["m2_state"],
                           mamba_expand=2, mamba_d_conv=4, mamba_chunk_size=p["chunk"],
                           max_position_embeddings=4 * context, **common)
    if name == "toy-transformer-deep":
        deep = {**common, "hidden_size": p["deep_d"]}
        return LlamaConfig(num_hidden_layers=p["ssm_layers"], num_attention_heads=p["deep_heads"],
                           num_key_value_heads=p["deep_heads"], intermediate_size=p["deep_mlp"],
                           max_position_embeddings=4 * context, **deep)
    raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(FAMILIES_ALL)}.")


def build_model(name: str, preset: str = "small", seed: int = 0, **kw):
    """A freshly initialised model (deterministic for a seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(model_config(name, preset, **kw))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
