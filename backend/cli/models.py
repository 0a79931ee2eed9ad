"""`python -m backend models`: list the registry and whether each model is on this machine.

    python -m backend models                          # the table
    python -m backend models --add FOLDER [--name N]  # add a local model folder
    python -m backend models --unpack-weights         # unpack the bundled model.safetensors.xz (scripts/setup.sh)
    python -m backend models --pack-weights FOLDER    # write FOLDER/model.safetensors.xz, the form to commit
"""

from __future__ import annotations

import argparse
import json

from backend.models import registry, weights

HELP = "list models (bundled, Hugging Face ids, local folders) and whether each is available here"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help=HELP, description=HELP)
    p.add_argument("--add", metavar="FOLDER", help="validate a local model folder and add it to the registry")
    p.add_argument("--name", help="name for --add (default: the folder name)")
    p.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    p.add_argument("--unpack-weights", action="store_true",
                   help="unpack every bundled model.safetensors.xz that is not unpacked yet, then exit")
    p.add_argument("--pack-weights", metavar="FOLDER",
                   help="compress FOLDER/model.safetensors into model.safetensors.xz (the tracked form), then exit")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.unpack_weights:
        done = weights.unpack_all(registry.BUNDLED_DIR)
        print(f"unpacked {len(done)} bundled checkpoint(s)" + "".join(f"\n  {f}" for f in done))
        return 0
    if args.pack_weights:
        packed = weights.pack_weights(args.pack_weights)
        plain = packed.with_suffix("")
        print(f"wrote {packed} ({packed.stat().st_size / 2**20:.1f} MiB from {plain.stat().st_size / 2**20:.1f} MiB)")
        return 0
    if args.add:
        spec = registry.add_local_model(args.add, name=args.name)
        print(f"added {spec.name} ({spec.family}) from {spec.location}")
    rows = []
    for spec in registry.list_specs():
        ok, why = registry.availability(spec)
        rows.append({**spec.to_dict(), "available": ok, "availability": why})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'family':<11} {'source':<8} {'paired with':<28} status")
    for r in rows:
        status = "placeholder" if r["placeholder"] else ("ok" if r["available"] else "unavailable")
        print(f"{r['name']:<{width}}  {r['family']:<11} {r['source']:<8} {str(r['paired_with'] or '-'):<28} "
              f"{status}: {r['availability']}")
    return 0
