"""`python -m backend toyworld ...`: the toy world's corpus, tokenizer and model archives
(the held-out evaluation of a checkpoint is `python -m backend evaluate`).

    python -m backend toyworld sample --kind qa_open        # print a few training documents
    python -m backend toyworld tokenizer                    # retrain the shared BPE tokenizer
    python -m backend toyworld pack toy-mamba [--out DIR]   # one .tar.gz
    python -m backend toyworld unpack toy-mamba.tar.gz [--dest assets/models]
"""

from __future__ import annotations

import argparse

HELP = "toy world: sample documents, retrain the tokenizer, pack / unpack a model"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("toyworld", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="toy_cmd", required=True)
    s = sub.add_parser("sample", help="print training documents")
    s.add_argument("--kind", default="", help="one document kind of the mixture (default: the mixture)")
    s.add_argument("-n", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("tokenizer", help="retrain the shared tokenizer into backend/toyworld/tokenizer/")
    t.add_argument("--chars", type=int, default=20_000_000)
    k = sub.add_parser("pack", help="pack a model folder into NAME.tar.gz")
    k.add_argument("name")
    k.add_argument("--out", default=None)
    u = sub.add_parser("unpack", help="unpack an archive made by pack")
    u.add_argument("archive")
    u.add_argument("--dest", default=None)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.toy_cmd == "sample":
        import random

        from backend.toyworld import corpus

        if args.kind:
            if args.kind not in corpus.MIXTURE:
                raise SystemExit(f"Unknown kind {args.kind!r}; choose one of {', '.join(corpus.MIXTURE)}.")
            rng = random.Random(f"sample:{args.seed}")
            docs = [corpus._doc(args.kind, rng) for _ in range(args.n)]
        else:
            gen = corpus.documents(args.seed)
            docs = [next(gen) for _ in range(args.n)]
        print("\n<|endoftext|>\n".join(docs))
    elif args.toy_cmd == "tokenizer":
        from backend.toyworld.tokenizer import TOKENIZER_DIR, train_tokenizer

        tok = train_tokenizer(TOKENIZER_DIR, n_chars=args.chars)
        print(f"wrote {TOKENIZER_DIR} ({len(tok)} tokens)")
    elif args.toy_cmd == "pack":
        from backend.training.pack import pack

        print(pack(args.name, args.out))
    elif args.toy_cmd == "unpack":
        from backend.training.pack import unpack

        print(unpack(args.archive, args.dest))
    return 0
