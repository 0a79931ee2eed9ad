"""RecordWriter (JSONL, no duckdb) and importing its files into the store."""

import json
import subprocess
import sys
import textwrap

import pytest

from store import RecordWriter, StoreError, StoreImportError
from store.db import REPO_ROOT


def _write_run(path, n=3, status="completed"):
    w = RecordWriter(path)
    run_id = w.start_run("bench", {"models": ["a"]}, {"git_sha": "abc"}, name="gpu sweep")
    w.add_measurements(run_id, [{"model": "a", "batch": b, "tpot_ms": 1.0 + b, "gpu_clock": 1980} for b in range(n)])
    w.add_predictions(run_id, [{"instance_id": "i0", "model": "a", "output": "x", "type": "qa"}])
    w.finish_run(run_id, status, {"n": n})
    return run_id


def test_record_writer_works_without_duckdb(tmp_path):
    out = tmp_path / "r.jsonl"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["duckdb"] = None  # importing duckdb now fails, as on a machine without it
        sys.modules["pandas"] = None
        sys.modules["pyarrow"] = None
        from store import RecordWriter, StoreError
        w = RecordWriter({str(out)!r})
        rid = w.start_run("bench", {{}}, {{}})
        w.add_measurements(rid, [{{"model": "a", "value": float("nan")}}])
        w.finish_run(rid)
        print(rid)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["type"] for r in lines] == ["run", "measurement", "run_end"]
    assert lines[1]["data"] == {"model": "a", "value": None}  # NaN written as null: the file stays JSON
    assert lines[0]["run_id"] == proc.stdout.strip() == lines[1]["run_id"]


def test_import_round_trip_and_idempotence(store, tmp_path):
    path = tmp_path / "results" / "sweep.jsonl"
    run_id = _write_run(path)
    counts = store.import_jsonl(path)
    assert counts == {"runs": 1, "run_ends": 1, "measurements": 3, "predictions": 1, "errors": 0}
    assert store.import_jsonl(path) == {"runs": 0, "run_ends": 0, "measurements": 0, "predictions": 0, "errors": 0}
    run = store.runs().iloc[0]
    assert (run.run_id, run.status, run["name"], run.summary, run.meta) == (
        run_id, "completed", "gpu sweep", {"n": 3}, {"git_sha": "abc"})
    m = store.measurements(run_ids=run_id)
    assert sorted(m.batch) == [0, 1, 2] and list(m.extra) == [{"gpu_clock": 1980}] * 3
    p = store.predictions(run_id=run_id)
    assert p.iloc[0].extra == {"type": "qa"} and p.iloc[0].output == "x"
    assert store.done_instances(run_id, "a") == {"i0"}


def test_run_end_written_later_updates_the_run(store, tmp_path):
    path = tmp_path / "r.jsonl"
    w = RecordWriter(path)
    run_id = w.start_run("bench", {}, {})
    store.import_jsonl(path)
    assert store.runs().iloc[0].status == "running"
    w.finish_run(run_id, "failed", {"error": "OOM"})
    assert store.import_jsonl(path)["run_ends"] == 1
    assert store.runs().iloc[0].status == "failed"


def test_malformed_lines_are_reported_with_file_and_line_and_the_rest_goes_in(store, tmp_path):
    path = tmp_path / "bad.jsonl"
    _write_run(path)  # 6 lines
    lines = path.read_text().splitlines()
    lines.insert(2, '{"type": "measurement", "run_id": "x"')  # line 3: cut short
    lines.insert(4, '{"type": "measurement", "measurement_id": "m1", "run_id": "r", "data": {"batch": "two"}}')
    lines.append('{"type": "mystery", "run_id": "r"}')  # line 9
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreImportError) as err:
        store.import_jsonl(path)
    msg = str(err.value)
    assert f"{path}:3: not valid JSON" in msg
    assert f"{path}:5: measurement key 'batch'" in msg
    assert f"{path}:9: unknown record type 'mystery'" in msg
    assert err.value.counts == {"runs": 1, "run_ends": 1, "measurements": 3, "predictions": 1, "errors": 3}
    assert len(store.measurements()) == 3 and len(store.predictions()) == 1


def test_line_cut_by_a_killed_writer_costs_only_that_line(store, tmp_path):
    path = tmp_path / "r.jsonl"
    run_id = _write_run(path, n=2)
    with open(path, "a") as f:
        f.write('{"type": "measurement", "measurement_id": "half')  # the writer died here
    w = RecordWriter(path)  # a new process resumes appending
    w.add_measurements(run_id, [{"model": "a", "batch": 9}])
    with pytest.raises(StoreImportError, match=r"r\.jsonl:6: not valid JSON"):
        store.import_jsonl(path)
    assert sorted(store.measurements().batch) == [0, 1, 9]


def test_import_results_dir(store, tmp_path):
    folder = tmp_path / "results"
    _write_run(folder / "a.jsonl", n=2)
    _write_run(folder / "nested" / "b.jsonl", n=3)
    (folder / "notes.txt").write_text("not a results file")
    totals = store.import_results_dir(folder)
    assert totals["files"] == 2 and totals["runs"] == 2 and totals["measurements"] == 5
    assert store.import_results_dir(folder)["measurements"] == 0
    with pytest.raises(StoreError, match="no results folder"):
        store.import_results_dir(tmp_path / "missing")
    with pytest.raises(StoreError, match="no results file"):
        store.import_jsonl(tmp_path / "missing.jsonl")


def test_record_writer_done_instances(tmp_path):
    w = RecordWriter(tmp_path / "r.jsonl")
    run_id = w.start_run("fewshot", {}, {})
    w.add_predictions(run_id, [{"instance_id": i, "model": "a"} for i in range(3)])
    w.add_predictions(run_id, [{"instance_id": "z", "model": "b"}])
    assert w.done_instances(run_id, "a") == {"0", "1", "2"}
    assert w.done_instances("other", "a") == set()
    with pytest.raises(ValueError, match="completed, cancelled, failed"):
        w.finish_run(run_id, "ok")


def test_gzipped_results_import_like_plain_ones(store, tmp_path):
    """Large committed results are kept as .jsonl.gz: the folder import finds them, a file imports the same
    rows as its plain copy, and a truncated .gz keeps the lines before the damage and names the file."""
    import gzip

    folder = tmp_path / "results"
    plain = folder / "a.jsonl"
    _write_run(plain, n=4)
    gz = folder / "old" / "a_copy.jsonl.gz"
    gz.parent.mkdir(parents=True)
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    totals = store.import_results_dir(folder)
    assert totals["files"] == 1 and totals["runs"] == 1 and totals["measurements"] == 4 and totals["errors"] == 0
    assert store.runs().iloc[0].status == "completed"

    other = tmp_path / "b.jsonl"
    _write_run(other, n=50)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(other.read_bytes())[:-40])  # the gzip trailer and some data missing
    with pytest.raises(StoreImportError, match="cut.jsonl.gz: unreadable after line") as err:
        store.import_jsonl(cut)
    assert err.value.counts["runs"] == 1 and 0 < err.value.counts["measurements"] <= 50


def test_xz_results_import_like_plain_ones(store, tmp_path):
    """The largest committed results are kept as .jsonl.xz (35-60% smaller than gzip, for the 64 MiB a GPU call
    carries): the folder import and every reader (`open_results`, `result_files`) find and read them, and a
    truncated .xz keeps the lines before the damage and names the file."""
    import lzma

    from store import open_results, result_files

    folder = tmp_path / "results"
    plain = folder / "a.jsonl"
    _write_run(plain, n=4)
    xz = folder / "exp_a.jsonl.xz"
    xz.write_bytes(lzma.compress(plain.read_bytes()))
    (folder / "notes.xz").write_bytes(lzma.compress(b"not results"))
    assert [p.name for p in result_files(folder)] == ["a.jsonl", "exp_a.jsonl.xz"]
    assert [p.name for p in result_files(folder, "exp_*")] == ["exp_a.jsonl.xz"]
    with open_results(xz) as f:
        assert f.read() == plain.read_text()
    plain.unlink()
    totals = store.import_results_dir(folder)
    assert totals["files"] == 1 and totals["runs"] == 1 and totals["measurements"] == 4 and totals["errors"] == 0

    other = tmp_path / "b.jsonl"
    _write_run(other, n=50)
    cut = tmp_path / "cut.jsonl.xz"
    cut.write_bytes(lzma.compress(other.read_bytes())[:-60])
    with pytest.raises(StoreImportError, match="cut.jsonl.xz: unreadable after line") as err:
        store.import_jsonl(cut)
    assert err.value.counts["runs"] == 1 and err.value.counts["measurements"] <= 50
