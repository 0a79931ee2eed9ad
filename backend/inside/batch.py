"""What the Inside view and Explainer pages and `python -m backend inspect` run.

    source_text(prompt=..., passkey=(length, depth), rag_k=..., seed, query, count_tokens) -> InstanceText
    run_instance(config dict, instance_id, count_tokens) -> InstanceText   (an instance of a stored run)
    inspect_models(get_generator, names, text, ...) -> [Outcome(model, inspection | None, error | None, path)]
    ssd_explainer(gen | None, text, layer, lengths) -> dict               (backend.inside.explain.ssd_demo)

A model that cannot be inspected (the fake backend, a hybrid whose SSM layers are not Mamba-2, a text over
the limit) gets its sentence in `error`; the others still run. With `out_dir`, each inspection is written to `<out_dir>/<model>.npz`.
The pages import this module, so it imports nothing heavy at the top: core / explain (torch) load inside
the functions that need them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ModelError
from backend.experiments.config import ExperimentConfig
from backend.generation.interface import GenerationError
from backend.inside import instances
from backend.inside.data import InspectError, Inspection, save, summary_line
from backend.inside.instances import InstanceText


@dataclass
class Outcome:
    model: str
    inspection: Inspection | None = None
    error: str | None = None
    path: Path | None = None


def source_text(prompt: str | None = None, passkey: tuple[int, float] | None = None, rag_k: int | None = None,
                seed: int = 0, query: int = 0, count_tokens=None) -> InstanceText:
    """The text to inspect: a prompt as given, or a pass-key / RAG experiment instance with its highlights."""
    if passkey is not None:
        return instances.from_plan(instances.passkey_config(passkey[0], passkey[1], seed, query), query=query,
                                   count_tokens=count_tokens)
    if rag_k is not None:
        return instances.from_plan(instances.rag_config(rag_k, seed, query), query=query, count_tokens=count_tokens)
    if not (prompt or "").strip():
        raise InspectError("Give a prompt, a pass-key length or a RAG k to look inside the models.")
    return InstanceText("prompt", prompt, "")


def run_instance(config: dict, instance_id: str, count_tokens=None, get_generator: Callable | None = None
                 ) -> InstanceText:
    """Instance `instance_id` of a stored experiment run (its plan rebuilt from the run's config: plans are
    seed-stable, and the stored prompt may be elided), with its highlights. Without `count_tokens` the run's
    first model counts tokens (as the runner did), through `get_generator`."""
    cfg = ExperimentConfig.from_dict(config)
    if count_tokens is None and get_generator is not None:
        count_tokens = get_generator(cfg.models[0]).count_tokens
    return instances.from_plan(cfg, instance_id=instance_id, count_tokens=count_tokens)


def _stored_config(db: str | None, run_id: str) -> dict:
    from store import open_store

    runs = open_store(db).runs()
    row = runs[runs["run_id"].astype(str).str.startswith(run_id)] if run_id else runs.iloc[:0]
    if len(row) != 1:
        raise InspectError(f"No single stored run matches {run_id!r}. Copy a run id from the History page or "
                           "`python -m backend store info`.")
    return row.iloc[0]["config"]


def cli_command(names: list[str], prompt: str | None = None, passkey: tuple[int, float] | None = None,
                rag_k: int | None = None, seed: int = 0, query: int = 0, new_tokens: int = 0,
                max_tokens: int | None = None, run: tuple[str, str] | None = None) -> str:
    """The `python -m backend inspect` line that computes the same arrays (what each page shows)."""
    parts = ["python", "-m", "backend", "inspect", "--model", ",".join(names)]
    if run is not None:
        parts += ["--run", run[0], "--instance", run[1]]
    elif passkey is not None:
        parts += ["--passkey", str(passkey[0]), "--depth", f"{passkey[1]:g}", "--seed", str(seed), "--query", str(query)]
    elif rag_k is not None:
        parts += ["--rag", str(rag_k), "--seed", str(seed), "--query", str(query)]
    else:
        parts += ["--prompt", prompt or ""]
    parts += ["--new-tokens", str(new_tokens)] if new_tokens else []
    parts += ["--max-tokens", str(max_tokens)] if max_tokens else []
    return shlex.join(parts)


def _file_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model) + ".npz"


def inspect_models(get_generator: Callable, names: list[str], text: InstanceText, new_tokens: int = 0,
                   outputs: dict[str, list[int]] | None = None, max_tokens: int | None = None,
                   out_dir: str | Path | None = None) -> list[Outcome]:
    """Inspect each model in `names` on `text` (its output: `outputs[name]` token ids, else `new_tokens`
    generated greedily, else none). Errors with a sentence become the outcome's `error`."""
    # torch loads here, when a model is inspected, not when a page imports this module
    from backend.inside import core

    results = []
    for name in names:
        try:
            gen = get_generator(name)
            insp = core.inspect(gen, text.prompt, output_ids=(outputs or {}).get(name), new_tokens=new_tokens,
                                max_tokens=max_tokens, char_spans=text.char_spans)
        except (ModelError, GenerationError, ValueError, OSError) as e:  # ours carry a sentence
            results.append(Outcome(name, error=str(e)))
            continue
        insp.meta.update(instance=text.id, reference=text.reference)
        path = save(insp, Path(out_dir) / _file_name(name)) if out_dir else None
        results.append(Outcome(name, insp, path=path))
    return results


def ssd_explainer(gen, text: str, layer: int, lengths: list[int], chunk: int = 64) -> dict:
    """The explainer's three SSD forms on Mamba-2 layer `layer` of `gen` (a loaded Mamba-2 model or hybrid) reading
    `text`; with
    gen None, on random inputs of toy-mamba2's layer size (`source` says which)."""
    # torch loads here, when the demonstration runs
    from backend.inside import explain

    if gen is None:
        out = explain.ssd_demo(explain.random_inputs(max(lengths)), lengths, chunk)
        return {**out, "source": f"random inputs of toy-mamba2's layer size ({max(lengths)} tokens)"}
    v = explain.mamba2_layer_inputs(gen, text, layer)
    where = f"layer {v['layer']}" if gen.info.family != "hybrid" else \
        f"Mamba-2 layer {v['layer']} (layer {v['model_layer']} of the hybrid)"
    return {**explain.ssd_demo(v, lengths, chunk), "source": f"{gen.info.name}, {where}, on your text"}


def run(args) -> int:
    """`python -m backend inspect`: one summary line per model, one .npz per model in args.out."""
    from backend.models import registry
    from backend.models.manager import ModelManager

    names = [n.strip() for n in args.model.split(",") if n.strip()]
    for n in names:  # a typo fails before anything loads
        registry.get_spec(n)
    manager = ModelManager()
    get = lambda name: manager.get(name, device=args.device)  # noqa: E731
    if args.run:
        if not args.instance:
            raise InspectError("--run needs --instance ID (the instance ids are on the experiment pages).")
        text = run_instance(_stored_config(args.db, args.run), args.instance or "", get_generator=get)
    else:
        text = source_text(args.prompt, (args.passkey, args.depth) if args.passkey else None, args.rag, args.seed,
                           args.query, count_tokens=get(names[0]).count_tokens)
    if text.id != "prompt":
        print(f"instance {text.id} (reference {text.reference!r}): {len(text.char_spans)} highlighted span(s)"
              + (f"; {text.note}" if text.note else ""))
    failed = 0
    for o in inspect_models(get, names, text, new_tokens=args.new_tokens, max_tokens=args.max_tokens,
                            out_dir=args.out):
        if o.error:
            failed += 1
            print(f"{o.model}: {o.error}")
            continue
        out = "".join(o.inspection.tokens[o.inspection.n_prompt:])
        print(summary_line(o.inspection, args.at) + (f"; output {out!r}" if out else "") + f" -> {o.path}")
    return 2 if failed == len(names) else 0
