"""`python -m backend rag`: document collections and questions answered from them (the RAG page's CLI).

Examples:
  python -m backend rag ingest notes report.pdf minutes.docx readme.md
  python -m backend rag list                 # collections
  python -m backend rag list notes           # documents of a collection with chunk counts
  python -m backend rag search notes --question "Who built the lighthouse?" --k 5
  python -m backend rag ask notes --question "Who built the lighthouse?" --models toy-mamba,toy-transformer \\
      --k 3 --closed-book
  python -m backend rag delete notes <doc_id>
  python -m backend rag rebuild notes        # re-embed every chunk into a fresh index
  python -m backend rag measure --entities 200   # recall@k / MRR of the retriever on the toy world
Indexes live under SSM_ARENA_DATA (default data/)/indexes; chunk metadata and answers in the store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.generation.interface import GenSettings
from backend.models import registry
from backend.rag import ask, record_rag
from retrieval import RetrievalError, Retriever
from store import open_store

HELP = "RAG: ingest documents into a collection, search it, and ask models questions about it"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("rag", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    sub = p.add_subparsers(dest="rag_command", metavar="<action>", required=True)
    s = sub.add_parser("ingest", help="add PDF / DOCX / Markdown / text files to a collection (created if new)")
    s.add_argument("collection")
    s.add_argument("files", nargs="+", type=Path)
    s = sub.add_parser("list", help="list collections, or the documents of one collection")
    s.add_argument("collection", nargs="?")
    s = sub.add_parser("search", help="show the top-k chunks for a question (no models)")
    s.add_argument("collection")
    s.add_argument("--question", "-q", required=True)
    s.add_argument("--k", type=int, default=5)
    s = sub.add_parser("ask", help="retrieve, then let each model answer with the retrieved context")
    s.add_argument("collection")
    s.add_argument("--question", "-q", required=True)
    s.add_argument("--models", help="comma-separated model names (default: the bundled SSM / transformer pair)")
    s.add_argument("--k", type=int, default=3)
    s.add_argument("--closed-book", action="store_true", help="also answer without the context, for contrast")
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.add_argument("--device", default="auto")
    s.add_argument("--no-record", action="store_true", help="do not save the answers to the store")
    s = sub.add_parser("delete", help="remove a document (its chunks leave the index too)")
    s.add_argument("collection")
    s.add_argument("doc_id")
    s = sub.add_parser("rebuild", help="re-embed all chunks of a collection into a fresh index")
    s.add_argument("collection")
    s = sub.add_parser("drop", help="delete a whole collection and its index")
    s.add_argument("collection")
    s = sub.add_parser("measure", help="recall@k and MRR of the retriever alone on the toy world's RAG set")
    s.add_argument("--entities", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ks", default="1,2,3,5,10", help="comma-separated k values")
    s.add_argument("--no-record", action="store_true")
    p.set_defaults(func=main)
    return p


def _tqdm_progress():
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="file" if stage == "parse" else "chunk",
                                     file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _print_hits(hits) -> None:
    for h in hits:
        page = f" p.{h.page}" if h.page else ""
        text = " ".join(h.text.split())
        print(f"[{h.rank}] {h.score:.3f} {h.source}{page} chars {h.char_start}-{h.char_end}: "
              f"{text[:300]}{'...' if len(text) > 300 else ''}")


def main(args: argparse.Namespace) -> int:
    retriever = Retriever(open_store(args.db))
    try:
        return _run(args, retriever)
    except RetrievalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, retriever) -> int:
    cmd = args.rag_command
    if cmd == "ingest":
        from retrieval.sniff import too_large

        files, oversize = [], []
        for path in args.files:
            if not path.is_file():
                print(f"error: {path} is not a file.", file=sys.stderr)
                return 2
            if path.stat().st_size > retriever.limits.max_file_bytes:  # never read it into memory
                oversize.append(too_large(path.name, path.stat().st_size, retriever.limits))
            else:
                files.append((path.name, path.read_bytes()))
        report = retriever.add_files(args.collection, files, progress=_tqdm_progress())
        for e in oversize:
            print(f"FAILED {e.filename}: {e}")
        for f in report.files:
            if f.error:
                print(f"FAILED {f.filename}: {f.error}")
            else:
                print(f"added  {f.filename}: {f.n_chunks} chunks, {f.n_chars} characters (doc_id {f.doc_id})")
        n_failed = len(report.failed) + len(oversize)
        print(f"{len(report.added)} added, {n_failed} failed; collection {args.collection!r}")
        return 0 if report.added or not n_failed else 1
    if cmd == "list":
        if not args.collection:
            for name in retriever.list_collections():
                print(name)
            return 0
        docs = retriever.documents(args.collection)
        for d in docs.to_dict("records"):
            print(f"{d['doc_id']}  {d['n_chunks']:>5} chunks  {d['filename']}")
        return 0
    if cmd == "search":
        _print_hits(retriever.search(args.collection, args.question, args.k))
        return 0
    if cmd == "delete":
        n = retriever.delete_document(args.collection, args.doc_id)
        print(f"deleted {args.doc_id}: {n} chunks" if n else f"no document {args.doc_id} in {args.collection!r}")
        return 0 if n else 1
    if cmd == "rebuild":
        n = retriever.rebuild(args.collection, progress=_tqdm_progress())
        print(f"rebuilt {args.collection!r}: {n} chunks")
        return 0
    if cmd == "measure":
        from backend.experiments.rag import measure_retrieval

        ks = [int(k) for k in args.ks.split(",") if k.strip()]
        rows, run_id = measure_retrieval(args.entities, args.seed, ks, embedder=retriever.embedder,
                                         store=None if args.no_record else retriever.store, source="cli")
        for r in rows:
            ci = f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r.get("ci_low") is not None else ""
            print(f"{r['metric']:<9} k={r['extra']['params']['k']:<3} {r['value']:.3f}{ci}  n={r['n']}")
        if run_id:
            print(f"saved as run {run_id}")
        return 0
    if cmd == "drop":
        retriever.drop_collection(args.collection)
        print(f"dropped {args.collection!r}")
        return 0
    return _ask(args, retriever)


def _ask(args: argparse.Namespace, retriever) -> int:
    from backend.models.manager import ModelManager

    settings = GenSettings(max_new_tokens=args.max_new_tokens)
    settings.validate()
    names = [n.strip() for n in (args.models or "").split(",") if n.strip()] or list(registry.default_pair())
    for n in names:
        registry.get_spec(n)
    current = {"label": None}

    def on_token(col, text):
        if current["label"] != col.label:
            current["label"] = col.label
            print(f"\n--- {col.label} ---", flush=True)
        print(text, end="", flush=True)

    answer = ask(retriever, ModelManager(), args.collection, args.question, names, args.k, settings,
                 closed_book=args.closed_book, device=args.device, on_token=on_token)
    print("\n\nRetrieved:")
    _print_hits(answer.hits)
    print("\nAnswers:")
    for col in answer.columns:
        if col.error:
            print(f"{col.label}: ERROR {col.error}")
        else:
            m = col.result.metrics
            print(f"{col.label} [{col.n_chunks} chunks, {m.prompt_tokens} prompt tokens, "
                  f"TTFT {m.ttft_ms or 0:.1f} ms, {m.decode_tok_s or 0:.1f} tok/s, {m.path}]: "
                  f"{col.result.text.strip()}")
    if not args.no_record and any(c.result for c in answer.columns):
        run_id = record_rag(retriever.store, args.question, args.collection, args.k, answer.hits,
                            answer.columns, settings, source="cli", device=args.device)
        print(f"saved as run {run_id}")
    return 0 if any(c.result for c in answer.columns) else 1
