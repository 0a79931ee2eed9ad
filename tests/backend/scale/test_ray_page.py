"""The Chain-of-thought page sends its run to the two-node cluster and shows the shards' progress."""

from __future__ import annotations

import sys

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import arena_env  # noqa: F401
from tests.ui.test_experiment_pages import MODELS, PAGES, configure, stored_runs


def test_the_page_submits_to_a_cluster_and_shows_shards(ray_cluster, arena_env, monkeypatch):  # noqa: F811
    # AppTest runs the page as __main__ and leaves it there; later tests that spawn processes (they re-import
    # __main__) must get pytest's back, as they do when the UI tests run last
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    at = AppTest.from_file(str(PAGES / "cot.py"), default_timeout=240).run()
    at = configure(at, "cot")
    at.toggle(key="cot_ray").set_value(True).run()
    at.text_input(key="cot_ray_address").set_value(ray_cluster["address"]).run()
    assert any(c.value.endswith(f"--ray {ray_cluster['address']}") for c in at.code)
    at.button(key="cot_run").click().run()
    assert not at.exception, at.exception
    runs = stored_runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed", runs.iloc[0]["summary"]
    assert runs.iloc[0]["meta"]["ray"]["shards"] == len(MODELS)
    tables = [d.value for d in at.dataframe if "shard" in d.value.columns]
    assert tables and set(tables[0]["model"]) == set(MODELS) and (tables[0]["status"] == "completed").all()
