"""Explainer page through AppTest: its demonstrations on the fake backend (random SSD inputs, the fake cache
formulas, the synthetic selection demo) and on a tiny real Mamba-2 registered as a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.models import registry
from backend.models.placeholders import build_tiny

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "explainer.py")
TIMEOUT = 180


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, i: int = 0) -> dict:
    return at.table[i].value.iloc[:, 0].to_dict()


def _run_ssd(at: AppTest, model: str) -> None:
    """The SSD demo on layer 1 of `model`'s Mamba-2 layers, up to 128 tokens."""
    at.selectbox(key="explain_model").set_value(model)
    at.number_input(key="explain_layer").set_value(1)
    at.selectbox(key="explain_top").set_value(128)
    at.button(key="explain_ssd_run").click().run()
    assert not at.exception, at.exception


def test_demonstrations_on_the_fake_backend(arena_env):
    at = _page()
    assert at.title[0].value.startswith("Explainer")
    assert "Largest mean error over distances: fixed Δ = 0.05 (LTI)" in " ".join(c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 1  # the selection demo is drawn without any model
    at.selectbox(key="explain_top").set_value(128)
    at.button(key="explain_ssd_run").click().run()
    assert not at.exception, at.exception
    rows = _table(at)
    assert "random inputs" in " ".join(c.value for c in at.caption)
    assert len(rows) == 4 and all(float(v) < 1e-4 for v in rows.values()), rows
    assert at.success[0].value.startswith("The three forms agree")
    timing = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {d["name"] for d in timing["data"]} == {"recurrent", "chunked", "quadratic"}
    at.multiselect(key="explain_cache_models").set_value(["toy-mamba", "toy-transformer"])
    at.button(key="explain_cache_run").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    ssm = table[table["model"] == "toy-mamba"]["cache_bytes"]
    kv = table[table["model"] == "toy-transformer"]["cache_bytes"]
    assert ssm.nunique() == 1 and kv.is_monotonic_increasing and kv.iloc[-1] > kv.iloc[0]
    assert set(table["path"]) == {"fake"} and "Fake backend" in " ".join(c.value for c in at.caption)
    at.button(key="explain_sel_run").click().run()
    assert "served by the fake backend" in at.warning[0].value


@pytest.fixture
def tiny_mamba2(arena_env, monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.delenv("SSM_ARENA_FAKE")
    st.cache_resource.clear()
    registry.add_local_model(build_tiny("mamba2", tmp_path / "m2"), name="tiny-m2")
    return "tiny-m2"


def test_demonstrations_on_a_loaded_mamba2(tiny_mamba2):
    at = _page()
    _run_ssd(at, tiny_mamba2)
    assert any(c.value.startswith("Inputs: tiny-m2, layer 1, on your text") for c in at.caption)
    rows = _table(at)
    assert len(rows) == 5 and all(float(v) < 1e-4 for v in rows.values()), rows  # incl. the layer's own output
    at.selectbox(key="explain_sel_model").set_value(tiny_mamba2)
    at.button(key="explain_sel_run").click().run()
    assert not at.exception, at.exception
    assert at.metric[0].label == "mean Δ on the digits / on the dots" and at.metric[0].value.endswith("x")
    assert "6 digit tokens" in " ".join(c.value for c in at.caption)


@pytest.fixture
def tiny_hybrid(arena_env, monkeypatch, tmp_path):
    import streamlit as st

    from tests.backend.helpers import build_tiny_hybrid

    monkeypatch.delenv("SSM_ARENA_FAKE")
    st.cache_resource.clear()
    registry.add_local_model(build_tiny_hybrid(tmp_path / "hy", layers=3, attn=(1,)), name="tiny-hy")
    return "tiny-hy"


def test_demonstrations_on_a_loaded_hybrid(tiny_hybrid):
    """A hybrid's Mamba-2 layers in both pickers: layer 1 of its Mamba-2 layers is layer 2 of the model (its
    attention layer is 1), and the chunked SSD reproduces that layer's own output."""
    at = _page()
    _run_ssd(at, tiny_hybrid)
    captions = " ".join(c.value for c in at.caption)
    assert "Inputs: tiny-hy, Mamba-2 layer 1 (layer 2 of the hybrid), on your text" in captions
    rows = _table(at)
    assert len(rows) == 5 and all(float(v) < 1e-4 for v in rows.values()), rows
    at.selectbox(key="explain_sel_model").set_value(tiny_hybrid)
    at.button(key="explain_sel_run").click().run()
    assert not at.exception, at.exception
    assert at.metric[0].label == "mean Δ on the digits / on the dots" and at.metric[0].value.endswith("x")
