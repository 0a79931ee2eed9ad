"""`python -m backend rag`: document collections and questions answered from them (the RAG page's CLI).

Examples:
  python -m backend rag ingest notes report.pdf minutes.docx readme.md   # progress per file, with ETA
  python -m backend rag jobs                 # the dashboard's background uploads (--cancel JOB to stop one)
  python -m backend rag list                 # collections
  python -m backend rag list notes           # documents of a collection with chunk counts
  python -m backend rag search notes --question "Who built the lighthouse?" --k 5
  python -m backend rag ask notes --question "Who built the lighthouse?" --models toy-mamba,toy-transformer \\
      --k 3 --closed-book
  python -m backend rag delete notes <doc_id>
  python -m backend rag rebuild notes        # re-embed every chunk into a fresh index
  python -m backend rag measure --entities 200   # recall@k / MRR of the retriever on the toy world
Indexes live under SSM_ARENA_DATA (default data/)/indexes; chunk metadata and answers in the store.
Each command that names a collection first repairs what a crash left in it (retrieval/recovery.py) and says so.
`ingest-job` is what the dashboard starts in the background for an upload (retrieval/jobs.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli.generate import int_list, model_names, text_arg
from backend.generation.interface import GenSettings
from backend.rag import ask, record_rag
from retrieval import RetrievalError, Retriever, jobs
from retrieval.config import size_text
from retrieval.ingest import check_upload
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
    s = sub.add_parser("ingest-job", help="ingest an upload the dashboard staged (the dashboard starts this)")
    s.add_argument("job", type=Path, help="the job folder (data/jobs/<id>)")
    s.add_argument("--device", default="auto")
    s = sub.add_parser("jobs", help="the dashboard's background uploads: state, progress, time left")
    s.add_argument("collection", nargs="?")
    s.add_argument("--cancel", metavar="JOB", help="stop this job (its id from the list) between two batches")
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
    """rebuild's progress(stage, done, total)."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="chunk", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _file_progress(n_files: int):
    """ingest's on_file: one bar per file (chunks embedded / total, rate and time left), then its outcome."""
    from tqdm import tqdm

    bars: dict[int, tqdm] = {}

    def on_file(ev) -> None:
        if ev.state == "embedding":
            bar = bars.get(ev.index)
            if bar is None:
                bar = bars[ev.index] = tqdm(total=ev.chunks_total, desc=f"[{ev.index + 1}/{n_files}] {ev.filename}",
                                            unit="chunk", file=sys.stderr, leave=False)
            bar.n = ev.chunks_done
            bar.refresh()
        elif ev.index in bars:
            bars.pop(ev.index).close()

    return on_file


def _print_hits(hits) -> None:
    for h in hits:
        page = f" p.{h.page}" if h.page else ""
        text = " ".join(h.text.split())
        print(f"[{h.rank}] {h.score:.3f} {h.source}{page} chars {h.char_start}-{h.char_end}: "
              f"{text[:300]}{'...' if len(text) > 300 else ''}")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "k", 1) < 1:
        raise ValueError(f"--k must be at least 1 (got {args.k}).")
    text_arg(getattr(args, "question", None), "question")
    if args.rag_command == "jobs":
        return _jobs(args)
    retriever = Retriever(open_store(args.db))
    try:
        return _run(args, retriever)
    except RetrievalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _recover(retriever, collection: str | None) -> None:
    if collection and collection in retriever.list_collections():
        for note in retriever.recover(collection):
            print(f"note: {note}", file=sys.stderr)


def _ingest(args: argparse.Namespace, retriever) -> int:
    from retrieval.sniff import too_large

    for path in args.files:
        if not path.is_file():
            raise RetrievalError(f"{path} is not a file; nothing was added.")
    limit = retriever.limits.max_file_bytes
    sizes = {p: p.stat().st_size for p in args.files}
    check_upload([(p.name, size if size <= limit else 0) for p, size in sizes.items()], retriever.limits)
    files, oversize = [], []
    for path in args.files:
        if sizes[path] > limit:  # refused on its own (and never read into memory); not counted in the total
            oversize.append(too_large(path.name, sizes[path], retriever.limits))
        else:
            files.append((path.name, path.read_bytes()))
    _recover(retriever, args.collection)
    report = retriever.add_files(args.collection, files, on_file=_file_progress(len(files))) if files else None
    for e in oversize:
        print(f"FAILED {e.filename}: {e}")
    for f in report.files if report else []:
        if f.error:
            print(f"FAILED {f.filename}: {f.error}")
        else:
            print(f"added  {f.filename}: {f.n_chunks} chunks, {f.n_chars} characters (doc_id {f.doc_id})")
    added = len(report.added) if report else 0
    n_failed = (len(report.failed) if report else 0) + len(oversize)
    print(f"{added} added, {n_failed} failed; collection {args.collection!r}")
    return 0 if added or not n_failed else 1


def _ingest_job(args: argparse.Namespace, retriever) -> int:
    from retrieval.embed import get_embedder

    manifest = jobs.read_manifest(args.job)
    worker = Retriever(retriever.store, data_dir=manifest["data_dir"],
                       embedder_loader=lambda: get_embedder(None if args.device == "auto" else args.device))
    _recover(worker, manifest["collection"])
    status = jobs.run_job(args.job, worker)
    for f in status["files"]:
        print(f"{f['state']:<9} {f['name']}" + (f": {f['error']}" if f.get("error") else ""))
    print(f"job {args.job.name}: {status['state']}" + (f" ({status['error']})" if status.get("error") else ""))
    return 0 if status["state"] == "done" else 1


def _jobs(args: argparse.Namespace) -> int:
    if args.cancel:
        job = jobs.jobs_dir() / Path(args.cancel).name
        if not (job / "status.json").is_file():
            raise RetrievalError(f"There is no upload job {args.cancel!r}; `python -m backend rag jobs` lists them.")
        jobs.request_cancel(job)
        print(f"asked job {job.name} to stop; the file being embedded is dropped, the files already added stay")
        return 0
    for status in jobs.list_jobs(collection=args.collection):
        done, total = status["chunks_done"], status["chunks_total"]
        eta = f", about {status['eta_s']:.0f} s left" if status.get("eta_s") and status["state"] == "running" else ""
        size = size_text(sum(f["size"] for f in status["files"]))
        print(f"{status['id']}  {status['state']:<9} {status['collection']}: {len(status['files'])} file(s), {size}, "
              f"{done}/{total or '?'} chunks{eta}" + (f"; {status['error']}" if status.get("error") else ""))
    return 0


def _run(args: argparse.Namespace, retriever) -> int:
    cmd = args.rag_command
    if cmd == "ingest":
        return _ingest(args, retriever)
    if cmd == "ingest-job":
        return _ingest_job(args, retriever)
    if cmd in ("list", "search", "ask", "delete"):
        _recover(retriever, args.collection)
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

        ks = int_list(args.ks, "--ks")
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
    names = model_names(args.models)
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
