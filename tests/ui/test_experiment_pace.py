"""While an experiment runs: instances/s and the time left (backend/experiments/jobs.py, shown by
pages/components/experiment.py); a cancelled run is reported as an action, not an error."""

from __future__ import annotations

import time

from backend.experiments.jobs import ExperimentJob
from pages.components.experiment import _pace


class _Cfg:
    experiment, models = "fewshot", ["toy-mamba"]


def _job() -> ExperimentJob:
    return ExperimentJob(_Cfg(), lambda name: None, store=None)  # never started: progress is fed by hand


def test_rate_counts_from_the_first_report_so_model_loading_is_not_in_it(monkeypatch):
    job = _job()
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    assert job.rate() is None and job.eta_s() is None and _pace(job) == ""
    job._progress(0, 300, "toy-mamba")  # models loaded: the rate starts here
    clock[0] += 10
    job._progress(4, 300, "toy-mamba")
    assert job.rate() == 0.4 and job.eta_s() == 296 / 0.4
    monkeypatch.setattr(ExperimentJob, "running", property(lambda self: True))
    assert _pace(job) == " · 0.40 instances/s · about 12 min left"
    clock[0] += 600
    job._progress(299, 300, "toy-mamba")
    assert _pace(job).endswith("about 2 s left")


def test_a_resumed_run_does_not_count_the_instances_it_skipped(monkeypatch):
    job = _job()
    clock = [0.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    job._progress(200, 300, "resumed")
    clock[0] += 5
    job._progress(210, 300, "toy-mamba")
    assert job.rate() == 2.0 and job.eta_s() == 45.0


def test_a_cancelled_run_is_reported_as_complete_not_as_an_error(arena_env):
    """The status box of a cancelled job on an experiment page: a check mark and Resume, no error state."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    job = _job()
    job.status, job.done, job.total, job.finished_at = "cancelled", 3, 10, job.started_at + 5
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "pages" / "fewshot.py"), default_timeout=60)
    at.session_state["fewshot_job"] = job
    at.run()
    assert not at.exception, at.exception
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ == "Status":
                found.append(child.proto)
            walk(child)

    walk(at.main)
    assert len(found) == 1 and found[0].label.startswith("Cancelled after 3 of 10")
    assert found[0].state == found[0].State.COMPLETE and found[0].icon == ":material/check:"
    cancel = at.button(key="fewshot_cancel")
    assert cancel.proto.icon == ":material/stop_circle:" and cancel.proto.type != "primary"
