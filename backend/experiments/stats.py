"""What a reader needs to trust an accuracy: the floor it must beat, whether it lies inside what training showed,
and whether a difference between two models on the same items holds (pure pandas; the statistics themselves
are statsmodels calls in backend.experiments.metrics).

    baseline_table(preds, by, filt)      per cell: chance, majority (always the commonest reference), and the
                                         task's own guessing floors (a random listed value, a random needle)
    paired_table(preds, by, filt, ref)   per cell and model: the difference from `ref` on the same items, its 95%
                                         t interval, McNemar's exact p, Holm's p across the table, and `holds`
    distance_table(preds, filt)          pass-key accuracy by the needle's distance to the question
    trained_limit(experiment, axis)      the largest value of a sweep axis that training showed (None: no limit)
    reference_model(models, families)    the transformer the others are compared with
    references(models, families)         {model: its reference}: the transformer of the model's own training seed
                                         (the `-s<k>-` of ctx-s1-toy-mamba), else reference_model's
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from backend.experiments.metrics import holm, mcnemar_pvalue, paired_difference, wilson_interval, within_one
from backend.experiments.views import scored
from backend.toyworld import TRAINED

# the largest sweep value inside the training distribution, per (experiment, axis); the corpus draws from TRAINED
TRAINED_LIMITS: dict[tuple[str, str], int] = {
    ("fewshot", "k"): TRAINED["fewshot_k"][1], ("cot", "steps"): TRAINED["arithmetic_steps"][1],
    ("long-context", "pairs"): TRAINED["recall_pairs"][1], ("long-context", "words"): TRAINED["copy_words"][1],
    ("long-context", "distance"): TRAINED["passkey_tokens"][1], ("long-context", "length"): 1024,
    ("rag", "k"): TRAINED["qa_passages"][1],
}
DISTANCE_EDGES = [0, 128, 256, 512, 900, 1536, 3072, 6144, 12288, 10**9]
SIGNIFICANCE = 0.05


def trained_limit(experiment: str, axis: str, train_context: int | None = None) -> int | None:
    """The largest `axis` value training showed (length: the models' training context when given)."""
    if axis == "length" and train_context:
        return int(train_context)
    return TRAINED_LIMITS.get((experiment, axis))


SEED_TAG = re.compile(r"(?:^|[-_])s(\d+)(?=[-_]|$)")  # ctx-s1-toy-mamba: training seed 1


def _transformer(models: list[str], families: dict[str, str]) -> str | None:
    """The first transformer among `models` (by family, else by name), or None."""
    for m in models:
        if (families.get(m) or "").lower() in ("transformer", "llama", "gpt2", "gpt_neox"):
            return m
    for m in models:
        if "transformer" in m.lower():
            return m
    return None


def reference_model(models: list[str], families: dict[str, str] | None = None) -> str | None:
    """The model the others are compared with: the first transformer (by family, else by name), else the last."""
    return _transformer(models, families or {}) or (models[-1] if models else None)


def seed_of(model: str) -> int | None:
    """The training seed in a model's name (`ctx-s1-toy-mamba` -> 1), or None."""
    m = SEED_TAG.search(model)
    return int(m.group(1)) if m else None


def references(models: list[str], families: dict[str, str] | None = None) -> dict[str, str]:
    """{model: the model it is compared with}: the first transformer trained with the same seed (a seed-1 Mamba
    against the seed-1 transformer, so a paired difference is not a difference between training runs of the
    reference), else `reference_model` of all of them. Models without a seed tag all get the latter."""
    families = families or {}
    overall = reference_model(models, families)
    out = {}
    for m in models:
        seed = seed_of(m)
        same = [x for x in models if seed is not None and seed_of(x) == seed]
        ref = _transformer(same, families) or overall
        if ref is not None:
            out[m] = ref
    return out


def baseline_table(preds: pd.DataFrame, by: list[str], filt: str) -> pd.DataFrame:
    """Floors per cell of `by`: columns [*by, "baseline", "value", "n"]. "chance" (choice tasks: 1 / choices),
    "majority" (always answering the commonest reference of the cell, when some reference repeats; under the
    within1 filter, the best single answer within 1), "random listed value" (recall: 1 / pairs), "random needle" (pass key with distractors)."""
    cols = [*by, "baseline", "value", "n"]
    if preds is None or preds.empty:
        return pd.DataFrame(columns=cols)
    refs = preds.assign(_params=[p if isinstance(p, dict) else {} for p in preds["params"]])
    refs = refs[refs["model"] == refs["model"].iloc[0]].drop_duplicates("instance_id")
    params = pd.DataFrame(list(refs["_params"]), index=refs.index)
    if any(b not in params.columns for b in by):
        return pd.DataFrame(columns=cols)
    refs = pd.concat([refs[["reference", "extra"]], params], axis=1)
    rows = []
    for key, g in refs.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        n = len(g)
        answers = [str(r) for r in g["reference"]]
        if filt == "within1":
            best = max(sum(within_one(v, r) for r in answers) for v in set(answers))
        else:
            best = Counter(answers).most_common(1)[0][1]
        if best > 1:  # answers that never repeat (pass keys, copied text) have no majority to guess
            rows.append([*key, "majority", best / n, n])
        n_choices = [len((e or {}).get("choice_logprobs") or {}) for e in g["extra"] if isinstance(e, dict)]
        if n_choices and all(n_choices):
            rows.append([*key, "chance", float(np.mean([1 / c for c in n_choices])), n])
        if "pairs" in g.columns and g["pairs"].notna().all():
            rows.append([*key, "random listed value", float(np.mean(1 / g["pairs"].astype(float))), n])
        if "keys" in g.columns and g["keys"].notna().all() and (g["keys"] > 1).any():
            rows.append([*key, "random needle", float(np.mean(1 / g["keys"].astype(float))), n])
    return pd.DataFrame(rows, columns=cols)


PAIRED_COLUMNS = ["model", "reference", "n", "accuracy", "reference_accuracy", "diff", "diff_low", "diff_high",
                  "only_model", "only_reference", "p_value", "p_holm", "holds"]


def paired_table(preds: pd.DataFrame, by: list[str], filt: str,
                 reference: str | dict[str, str] | None = None) -> pd.DataFrame:
    """Each model against its reference on the items both scored, per cell of `by`: columns [*by, PAIRED_COLUMNS].
    `reference`: one model for all, or {model: reference} (`references`: per training seed); None: `references`
    of the models by name.
    diff = model minus reference (mean paired difference, 95% t interval); only_model / only_reference count the
    items one of them got right (binary scores; fractional ones count when they differ by >= 0.5); p_value is
    McNemar's exact test, p_holm its Holm correction across every row of the table; `holds` when the interval
    excludes 0 and p_holm < 0.05."""
    cols = [*by, *PAIRED_COLUMNS]
    df = scored(preds, filt)
    if df.empty or any(b not in df.columns for b in by):
        return pd.DataFrame(columns=cols)
    models = list(dict.fromkeys(df["model"]))
    refs = references(models) if reference is None else \
        reference if isinstance(reference, dict) else {m: reference for m in models}
    if not any(refs.get(m) in models and refs.get(m) != m for m in models):
        return pd.DataFrame(columns=cols)
    wide = df.pivot_table(index=["instance_id", *by], columns="model", values="value", aggfunc="first").reset_index()
    rows = []
    for key, g in wide.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for m in models:
            reference = refs.get(m)
            if reference is None or reference == m or reference not in models:
                continue
            both = g[[m, reference]].dropna()
            if both.empty:
                continue
            a, b = both[m].to_numpy(float), both[reference].to_numpy(float)
            diff, lo, hi = paired_difference(a, b)
            only_a, only_b = int(((a - b) >= 0.5).sum()), int(((b - a) >= 0.5).sum())
            rows.append([*key, m, reference, len(both), float(a.mean()), float(b.mean()), diff, lo, hi, only_a,
                         only_b, mcnemar_pvalue(only_a, only_b)])
    out = pd.DataFrame(rows, columns=[*by, *PAIRED_COLUMNS[:-2]])
    out["p_holm"] = holm(list(out["p_value"])) if len(out) else []
    out["holds"] = (out["p_holm"] < SIGNIFICANCE) & ((out["diff_low"] > 0) | (out["diff_high"] < 0))
    return out[cols]


def distance_table(preds: pd.DataFrame, filt: str, extra_by: tuple[str, ...] = ("keys",)) -> pd.DataFrame:
    """Pass-key accuracy by the needle's distance to the question (tokens, bucketed by DISTANCE_EDGES): columns
    [model, *extra_by, distance (the bucket's median distance), bucket, accuracy, n, ci_low, ci_high]."""
    by = [b for b in extra_by]
    cols = ["model", *by, "distance", "bucket", "accuracy", "n", "ci_low", "ci_high"]
    df = scored(preds, filt)
    if df.empty or "distance" not in df.columns:
        return pd.DataFrame(columns=cols)
    by = [b for b in by if b in df.columns]
    df = df.dropna(subset=["distance"])
    edges = DISTANCE_EDGES
    df = df.assign(bucket=pd.cut(df["distance"].astype(float), edges, right=False, labels=[
        f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]))
    medians = df.groupby("bucket", observed=True)["distance"].median()
    rows = []
    for key, g in df.groupby(["model", *by, "bucket"], sort=True, observed=True):
        n, total = len(g), float(g["value"].sum())
        lo, hi = wilson_interval(total, n)
        rows.append([*key[:-1], float(medians[key[-1]]), str(key[-1]), total / n, n, lo, hi])
    return pd.DataFrame(rows, columns=cols)


def listed_table(preds: pd.DataFrame, by: list[str], field: str = "listed") -> pd.DataFrame:
    """Share of answers that are one of the prompt's listed values (recall: `listed`; pass key: `distractors` plus
    the answer) but not the right one: the model copies a value without matching its key. Columns [model, *by,
    wrong_listed, n]."""
    cols = ["model", *by, "wrong_listed", "n"]
    if preds is None or preds.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for _, r in preds.iterrows():
        p = r["params"] if isinstance(r["params"], dict) else {}
        if r["score"] is None or pd.isna(r["score"]) or field not in p or any(b not in p for b in by):
            continue
        listed = set(str(p[field]).split(",")) - {""}
        said = str(r.get("extracted") or "").strip()
        rows.append([r["model"], *[p[b] for b in by], float(said in listed and said != str(r["reference"]))])
    if not rows:
        return pd.DataFrame(columns=cols)
    d = pd.DataFrame(rows, columns=["model", *by, "wrong_listed"])
    out = d.groupby(["model", *by], sort=True).agg(wrong_listed=("wrong_listed", "mean"), n=("wrong_listed", "size"))
    return out.reset_index()[cols]


def run_families(*parts) -> dict[str, str]:
    """{model: family} from a stored run's meta / summary dicts (their `model_info`)."""
    out: dict[str, str] = {}
    for d in parts:
        for m, info in ((d if isinstance(d, dict) else {}).get("model_info") or {}).items():
            if isinstance(info, dict) and info.get("family"):
                out.setdefault(m, info["family"])
    return out


def paired_summary(paired: pd.DataFrame, by: list[str]) -> list[str]:
    """One sentence per model: in which cells its difference from the reference holds, and which way."""
    out = []
    for model, g in paired.groupby("model", sort=False):
        held = g[g["holds"]]
        cells = [", ".join(f"{b}={r[b]:g}" if isinstance(r[b], (int, float)) else f"{b}={r[b]}" for b in by)
                 + f" ({r['diff']:+.2f} [{r['diff_low']:+.2f}, {r['diff_high']:+.2f}])" for _, r in held.iterrows()]
        ref = g["reference"].iloc[0]
        out.append(f"{model} vs {ref}: the difference holds in {len(held)} of {len(g)} cells"
                   + (": " + "; ".join(cells) if cells else "") + ".")
    return out
