from backend.generation.interface import GenSettings
from backend.generation.recording import record_generation
from backend.models.fake import FakeGenerator


class ListStore:
    """The store write API, in memory (the real store is exercised by test_cli)."""

    def __init__(self):
        self.runs, self.measurements, self.predictions = {}, [], []

    def start_run(self, kind, config, meta, name=None):
        self.runs["r1"] = {"kind": kind, "config": config, "meta": meta, "status": "running"}
        return "r1"

    def add_measurements(self, run_id, rows):
        self.measurements += [{**r, "run_id": run_id} for r in rows]

    def add_predictions(self, run_id, rows):
        self.predictions += [{**r, "run_id": run_id} for r in rows]

    def finish_run(self, run_id, status, summary=None):
        self.runs[run_id].update(status=status, summary=summary)


def test_record_generation_rows():
    settings = GenSettings(max_new_tokens=5, stop_at_eos=False)
    results = [FakeGenerator(n, f).generate("The cat", settings) for n, f in [("a", "mamba"), ("b", "transformer")]]
    st = ListStore()
    run_id = record_generation(st, results, settings, source="cli")
    run = st.runs[run_id]
    assert run["kind"] == "generate" and run["status"] == "completed"
    assert run["config"]["models"] == ["a", "b"] and run["config"]["prompt"] == "The cat"
    assert run["config"]["settings"]["max_new_tokens"] == 5 and "git_sha" in run["meta"]
    assert [m["model"] for m in st.measurements] == ["a", "b"]
    for m, r in zip(st.measurements, results, strict=True):
        assert {k: m[k] for k in r.metrics.to_dict()} == r.metrics.to_dict() and m["source"] == "cli"
    assert [(p["model"], p["prompt"], p["output"]) for p in st.predictions] == [
        ("a", "The cat", results[0].text), ("b", "The cat", results[1].text)]


def test_run_meta_fields():
    from backend.runinfo import run_meta

    meta = run_meta("auto")
    for key in ("git_sha", "hostname", "python", "torch", "transformers", "device_name"):
        assert key in meta
    assert meta["device_name"] and meta["python"].count(".") == 2
    assert meta["git_sha"] is None or len(meta["git_sha"]) == 40
