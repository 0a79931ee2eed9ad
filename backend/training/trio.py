"""Model definitions for the bundled toy trio: standard Hugging Face classes, parameter-matched.

    toy-mamba        MambaForCausalLM   d=256, 16 layers, d_state 16, expand 2       ~8.06M params
    toy-mamba2       Mamba2ForCausalLM  d=256, 16 layers, d_state 64, 8 heads x 64   ~7.96M params
    toy-transformer  LlamaForCausalLM   d=256,  8 layers, 4 heads x 64, MLP 768      ~7.87M params

The transformer trains at 1,024 tokens; its max_position_embeddings is 4,096 (RoPE, nothing learned per
position) so that the long-context experiment can test length extrapolation up to 4x.

Mamba-2's chunk_size is 32, not the usual 256: it only sets how transformers' PyTorch SSD splits the scan (the
result is the same for any chunk size), and that path materialises a (batch, L, chunk, heads, d_state) tensor,
which at 256 made a training step 4x slower than Mamba-1's (1.6 s vs 0.4 s at batch 16 on an H100).
All three use initializer_range 0.02 (the Mamba reference init; transformers defaults Mamba to 0.1).
Two Mamba layers per transformer layer, as in the Mamba paper (a Mamba block has ~half the parameters of an
attention + MLP block). Embeddings are tied; vocabulary 4096 (the shared toy-world tokenizer). Stored in
bf16 each checkpoint is under 16 MiB. The "tiny" preset is the same trio shrunk for CPU tests.
"""

from __future__ import annotations

MODEL_NAMES = ("toy-mamba", "toy-mamba2", "toy-transformer")
FAMILY = {"toy-mamba": "mamba", "toy-mamba2": "mamba2", "toy-transformer": "transformer"}

PRESETS: dict[str, dict] = {
    "small": {"d": 256, "ssm_layers": 16, "attn_layers": 8, "heads": 4, "mlp": 768, "m2_heads": 8,
              "m1_state": 16, "m2_state": 64, "chunk": 32},
    "tiny": {"d": 32, "ssm_layers": 2, "attn_layers": 1, "heads": 2, "mlp": 96, "m2_heads": 4,
             "m1_state": 4, "m2_state": 8, "chunk": 16},
}


def model_config(name: str, preset: str = "small", vocab_size: int = 4096, context: int = 1024,
                 bos_id: int = 0, eos_id: int = 0, pad_id: int = 1):
    """The Hugging Face config of one model of the trio."""
    from transformers import LlamaConfig, Mamba2Config, MambaConfig

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    common = dict(vocab_size=vocab_size, hidden_size=p["d"], tie_word_embeddings=True, initializer_range=0.02,
                  bos_token_id=bos_id,
                  eos_token_id=eos_id, pad_token_id=pad_id)
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
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


def build_model(name: str, preset: str = "small", seed: int = 0, **kw):
    """A freshly initialised model (deterministic for a seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(model_config(name, preset, **kw))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
