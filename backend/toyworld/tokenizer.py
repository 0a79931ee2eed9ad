"""The one BPE tokenizer shared by the three bundled models.

Byte-level BPE (any text encodes, nothing is unknown) with digits split one per token, trained with Hugging
Face `tokenizers` on the training corpus and saved as a `PreTrainedTokenizerFast`. `<|endoftext|>` (id 0)
is BOS, EOS and the document separator; encoding adds it in front of every text, as in training.

    python -m backend toyworld tokenizer   # retrain into backend/toyworld/tokenizer/ (committed)
"""

from __future__ import annotations

from pathlib import Path

TOKENIZER_DIR = Path(__file__).parent / "tokenizer"
EOT = "<|endoftext|>"
PAD = "<|pad|>"
VOCAB_SIZE = 4096


def train_tokenizer(out_dir: Path | str = TOKENIZER_DIR, n_chars: int = 20_000_000, seed: int = 0,
                    vocab_size: int = VOCAB_SIZE):
    """Train the BPE on about `n_chars` characters of the training corpus and save it to `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from .corpus import training_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_corpus(n_chars // 4, seed), trainer=trainer)
    eot = tok.token_to_id(EOT)
    tok.post_processor = processors.TemplateProcessing(single=f"{EOT} $A", pair=f"{EOT} $A {EOT} $B",
                                                       special_tokens=[(EOT, eot)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=None,
                                   pad_token=PAD, model_max_length=1_000_000)
    fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(path: Path | str = TOKENIZER_DIR):
    from transformers import PreTrainedTokenizerFast

    if not (Path(path) / "tokenizer.json").exists():
        raise FileNotFoundError(f"No tokenizer.json in {path}; run `python -m backend toyworld tokenizer` first.")
    return PreTrainedTokenizerFast.from_pretrained(str(path))
