"""`python -m backend ab`: the Blind A/B page from a terminal (argument parsing; the work is backend.arena).

  python -m backend ab --prompt "Question: Where does Teakelairk Taloukelea live?\\nAnswer:"
        one blind pair (one SSM or hybrid, one transformer, random order): both answers, your vote, then who was who
  python -m backend ab --leaderboard [--by model|family] [--resamples 200]
        Bradley-Terry scores (Elo scale) with 95% bootstrap intervals from the stored votes
  python -m backend ab --export votes.csv        every vote with its prompt and outputs (.csv, .parquet, .jsonl)
"""

from __future__ import annotations

import argparse
import sys

HELP = "blind A/B votes: vote on one anonymous pair, print the Bradley-Terry leaderboard, export the votes"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ab", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", help="generate one blind pair for this prompt and ask for a vote")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--stop-at-line", action="store_true", help="stop each side at the end of its first line")
    p.add_argument("--vote", choices=["a", "b", "tie", "both_bad"], help="vote without asking (scripts)")
    p.add_argument("--leaderboard", action="store_true", help="print the Bradley-Terry scores of the stored votes")
    p.add_argument("--by", choices=["model", "family", "both"], default="both")
    p.add_argument("--resamples", type=int, default=200, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--export", metavar="FILE", help="write every vote to FILE (.csv, .parquet or .jsonl)")
    p.add_argument("--device", default="auto")
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.set_defaults(func=main)
    return p


def _pair(args, store) -> None:
    from backend.arena.ab import VOTE_LABELS, draw_pair, record_vote
    from backend.arena.choices import model_choices
    from backend.generation.compare import CompareJob, Slot
    from backend.generation.interface import GenSettings
    from backend.models.manager import ModelManager

    prompt = args.prompt.replace("\\n", "\n")  # a typed \n is a line break (the trained formats use them)
    settings = GenSettings(max_new_tokens=args.max_new_tokens)
    pair = draw_pair(model_choices().offered)
    job = CompareJob([Slot("A", pair.model_a, prompt), Slot("B", pair.model_b, prompt)], settings, ModelManager(),
                     device=args.device, stop_at_line=args.stop_at_line).start()
    while job.running:
        job.drain()
        job.threads[-1].join(0.1)
    job.drain()
    for s in job.slots:
        print(f"=== {s.label} ===\n{s.error or s.text}\n")
    if any(s.result is None for s in job.slots):
        print(f"One side failed; no vote. A was {pair.model_a}, B was {pair.model_b}.", file=sys.stderr)
        return
    vote = args.vote
    while vote not in VOTE_LABELS:
        vote = input("Which is better? a / b / tie / both_bad: ").strip().lower()
    vote_id = record_vote(store, pair, prompt, {s.label: s.text for s in job.slots}, vote, settings,
                          {s.label: s.result.metrics.to_dict() for s in job.slots}, source="cli")
    print(f"{VOTE_LABELS[vote]}. A was {pair.model_a} ({pair.family_a}), B was {pair.model_b} ({pair.family_b}). "
          f"Saved as vote {vote_id}.")


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from backend.arena.ab import votes_frame
    from backend.arena.ratings import bt_scores
    from store import open_store

    if not (args.prompt or args.leaderboard or args.export):
        print("error: give --prompt, --leaderboard or --export (see python -m backend ab --help).", file=sys.stderr)
        return 2
    store = open_store(args.db)
    if args.prompt:
        _pair(args, store)
    votes = votes_frame(store)
    if args.leaderboard:
        if votes.empty:
            print("No votes are stored yet: vote on a pair first (--prompt, or the Blind A/B page).")
        for by in (("model", "family") if args.by == "both" else (args.by,)):
            scores = bt_scores(votes, by=by, n_resamples=args.resamples)
            if not scores.empty:
                print(f"\nBradley-Terry scores by {by} ({len(votes)} vote(s); Elo scale, 95% bootstrap interval):")
                with pd.option_context("display.width", 160, "display.max_columns", 20):
                    print(scores.round({"score": 0, "ci_low": 0, "ci_high": 0, "win_rate": 3}).to_string(index=False))
    if args.export:
        from backend.arena.ab import export_votes

        n = export_votes(votes, args.export)
        print(f"wrote {n} votes to {args.export}", file=sys.stderr)
    return 0
