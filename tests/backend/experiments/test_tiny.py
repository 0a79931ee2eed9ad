"""Each experiment end to end on tiny real models (Mamba and Llama, random weights) through the user path:
a saved folder added to the registry, loaded by the ModelManager, recorded in a DuckDB store."""

from __future__ import annotations

import pytest

from backend.experiments.config import ExperimentConfig
from backend.experiments.runner import run_experiment
from backend.models import registry
from backend.models.manager import ModelManager
from store import open_store

SWEEPS = {
    "fewshot": {"k": [0, 2]},
    "long-context": {"length": [128, 256], "depth": [0.0, 1.0]},
    "cot": {"steps": [1], "mode": ["direct", "cot"]},
}


@pytest.fixture
def tiny_models(tiny_dirs):
    names = []
    for arch in ("mamba", "llama"):
        names.append(registry.add_local_model(tiny_dirs[arch], name=f"tiny-{arch}").name)
    return names


@pytest.mark.parametrize("experiment", list(SWEEPS))
def test_experiment_on_tiny_models(experiment, tiny_models, tmp_path):
    st = open_store(tmp_path / "t.duckdb")
    cfg = ExperimentConfig(experiment, tiny_models, n=1, sweep=SWEEPS[experiment], max_new_tokens=6)
    out = run_experiment(cfg, ModelManager(fake=False).get, st)
    assert out.status == "completed" and out.done == out.total > 0
    info = st.runs().iloc[0]["meta"]["model_info"]
    assert all(len(info[m]["weights_sha256"]) == 64 for m in tiny_models)  # results tied to the checkpoint
    preds = st.predictions(run_id=out.run_id)
    assert len(preds) == out.total and preds["score"].notna().all()
    assert preds["score"].between(0, 1).all()
    meas = st.measurements(run_ids=[out.run_id])
    inst = meas[meas["metric"].isna()]
    assert (inst["path"].str.len() > 0).all() and (inst["prompt_tokens"] > 0).all()
    if experiment == "long-context":
        # prompts stay within their target length (counted with the model's own tokenizer) and grow with it
        tokens = {}
        for _, p in preds.iterrows():
            assert p["params"]["prompt_tokens"] <= p["params"]["length"]
            tokens.setdefault(p["params"]["length"], []).append(p["params"]["prompt_tokens"])
        assert min(tokens[256]) > max(tokens[128])
        gen_rows = inst[inst["cache_bytes"].notna()]
        kv = gen_rows[gen_rows["model"] == "tiny-llama"].sort_values("prompt_tokens")["cache_bytes"].tolist()
        ssm = gen_rows[gen_rows["model"] == "tiny-mamba"]["cache_bytes"].unique()
        assert kv[-1] > kv[0] and len(ssm) == 1  # the KV cache grows with context, the SSM state does not
