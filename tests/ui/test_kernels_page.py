"""The Kernels page renders from a store holding kernel_aot / kernel_bench / ssm_e2e runs, and says what to
run when the store is empty."""

from __future__ import annotations

from pathlib import Path

import pytest

# GPU machines have neither streamlit nor duckdb (results travel as JSONL): skip there, run everywhere else.
pytest.importorskip("streamlit", reason="streamlit not installed (e.g. a GPU image): the page test needs it")
pytest.importorskip("duckdb", reason="duckdb not installed (e.g. a GPU image): the page reads the DuckDB store")

# Not pages/kernels.py: with pages/ first on sys.path that name shadowed the project's `kernels` package.
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "kernel_results.py")


@pytest.fixture
def env(results_env):
    return results_env


def write_results(folder: Path) -> None:
    from store import RecordWriter

    w = RecordWriter(folder / "kernels_test.jsonl")
    dev = "NVIDIA H100 80GB HBM3"
    run = w.start_run("kernel_bench", {}, {})
    w.add_measurements(run, [
        {"model": "hbm_copy", "metric": "copy_gbps", "value": 3000.0, "device": dev, "family": "kernel"},
        {"model": "selective_scan", "metric": "kernel_ms", "value": 0.2, "shape": "B8 D1536 L4096 N16 bf16",
         "gbps": 2000.0, "pct_of_copy": 66.7, "reference_ms": 50.0, "speedup_vs_reference": 250.0, "device": dev,
         "family": "kernel", "path": "triton"},
        {"model": "selective_scan", "metric": "sweep_ms", "value": 0.25, "config": "LaunchConfig(...)",
         "pct_of_copy": 50.0, "device": dev, "family": "kernel"},
    ])
    w.finish_run(run)
    run = w.start_run("ssm_e2e", {}, {})
    rows = []
    for L in (512, 2048):
        rows.append({"model": "mamba-130m-shape", "family": "mamba", "path": "triton", "prompt_tokens": L,
                     "prefill_ms": L / 500, "peak_mem_bytes": 3 * 10**8, "device": dev})
        rows.append({"model": "mamba-130m-shape", "family": "mamba", "path": "hf-torch", "prompt_tokens": L,
                     "prefill_ms": L * 3.0, "peak_mem_bytes": 10**9, "device": dev})
        rows.append({"model": "mamba-130m-shape", "family": "mamba", "path": "triton+cudagraph", "prompt_tokens": L,
                     "new_tokens": 128, "decode_tok_s": 1500.0, "tpot_ms": 0.66, "device": dev})
    w.add_measurements(run, rows)
    w.finish_run(run)
    run = w.start_run("kernel_aot", {}, {})
    w.add_measurements(run, [
        {"model": "selective_scan", "variant": "v", "device": t, "ok": True, "spills": 0, "vgpr": 100,
         "metric": "compile_s", "value": 1.0, "family": "kernel"} for t in ("hip:gfx90a", "cuda:90")])
    w.finish_run(run)


def test_page_renders_stored_results(env):
    from streamlit.testing.v1 import AppTest

    write_results(env / "results")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    headers = [h.value for h in at.header]
    assert any("End to end" in h for h in headers) and any("roofline" in h for h in headers)
    assert any("Ahead-of-time" in h for h in headers)
    assert any("no errors, no spills" in s.value for s in at.success)
    assert len(at.dataframe) >= 3


def test_page_explains_an_empty_store(env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("No kernel results" in i.value for i in at.info)


RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_one_device_per_roofline_on_the_committed_results(tmp_path):
    """The committed kernel runs come from an H100 and an H200: each roofline holds one device's rows under that
    device's own copy bandwidth (the page once drew both under the last run's ceiling)."""
    import pandas as pd

    from backend.bench.analysis import rooflines
    from pages.components.charts import roofline_bars
    from store import open_store

    st = open_store(str(tmp_path / "k.duckdb"))
    for f in sorted(RESULTS.glob("kernels_*.jsonl*")):
        st.import_jsonl(str(f))
    kb = st.measurements(kinds=["kernel_bench"], expand_extra=True)
    groups = rooflines(kb)
    devices = [g[0] for g in groups]
    assert len(devices) >= 2 and len(set(devices)) == len(devices)
    for device, k, ceiling, peers in groups:
        assert not k.empty and set(k["device"]) == {device} and set(peers.get("device", [])) <= {device}
        run = k["run_id"].iloc[0]
        assert set(k["run_id"]) == {run}
        same_run = kb[(kb["run_id"] == run) & (kb["metric"] == "copy_gbps")]
        assert ceiling == float(same_run["value"].iloc[-1])
    mixed = pd.concat([g[1] for g in groups]).assign(label="x")
    with pytest.raises(AssertionError, match="one device per roofline"):
        roofline_bars(mixed, 1.0)


def test_page_draws_a_roofline_per_device(env):
    import shutil

    from streamlit.testing.v1 import AppTest

    for f in RESULTS.glob("kernels_*.jsonl*"):
        shutil.copy(f, env / "results" / f.name)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    subs = [s.value for s in at.subheader if "copy bandwidth" in s.value]
    assert len(subs) >= 2 and len({s.split(":")[0] for s in subs}) == len(subs)


def test_sweep_comes_from_the_newest_run_that_swept(env):
    """A newer run without a sweep (e.g. a short re-check of the defaults) keeps the older run's sweep on show."""
    import time

    from streamlit.testing.v1 import AppTest

    from store import RecordWriter

    write_results(env / "results")  # its kernel_bench run has one sweep row
    time.sleep(0.01)
    w = RecordWriter(env / "results" / "kernels_later.jsonl")
    run = w.start_run("kernel_bench", {}, {})
    w.add_measurements(run, [
        {"model": "hbm_copy", "metric": "copy_gbps", "value": 3000.0, "device": "NVIDIA H100 80GB HBM3", "family": "kernel"},
        {"model": "selective_scan", "metric": "kernel_ms", "value": 0.18, "shape": "B8 D1536 L4096 N16 bf16",
         "gbps": 2200.0, "pct_of_copy": 73.0, "device": "NVIDIA H100 80GB HBM3", "family": "kernel", "path": "triton"}])
    w.finish_run(run)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.label for e in at.expander if "sweep" in e.label]
    sweep = [df.value for df in at.dataframe if {"config", "ms"} <= set(df.value.columns)]
    assert len(sweep) == 1 and sweep[0]["ms"].tolist() == [0.25]
