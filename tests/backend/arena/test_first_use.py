"""What a first visit relies on: trained-format examples with references, honest model choices with the
network decided once, the bundled models' evaluation from the records of the weights on disk, headlines."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from backend.arena import choices, evaluation, examples, headlines
from backend.models import network, registry
from backend.toyworld import TEMPLATES

ROOT = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------ examples
def test_every_example_is_a_trained_format_and_qa_examples_carry_their_reference():
    exs = examples.examples()
    assert len({e.key for e in exs}) == len(exs) and all(e.key in TEMPLATES for e in exs)
    for e in exs:
        head = TEMPLATES[e.key].split("{")[0]
        assert e.prompt.startswith(head) or "{context}" in TEMPLATES[e.key], e.key
    qa = {e.key: e for e in exs}
    assert qa["qa_closed"].reference and qa["qa_closed"].stop_at_line
    assert qa["tell"].reference is None and not qa["tell"].stop_at_line
    assert examples.find(qa["qa_open"].prompt) is qa["qa_open"] and examples.find(qa["qa_open"].prompt + " ") is None


@pytest.mark.parametrize("output, reference, rule, correct", [
    (" engineer\nQuestion: more", "engineer", "first_line", True),
    (" Engineer.\n", "engineer", "first_line", True),  # the experiments' normalisation
    (" baker\n", "engineer", "first_line", False),
    ("\n engineer", "engineer", "first_line", False),  # the answer ends at the first line break
    ("Mes starts with 13.\n13 - 2 = 11.\nThe answer is 2.", "2", "answer_is", True),
    (" 12.\nQuestion", "12", "leading_number", True),
    (" twelve", "12", "leading_number", False),
])
def test_marking_uses_the_experiments_rules(output, reference, rule, correct):
    assert examples.mark(output, reference, rule).correct is correct


# ------------------------------------------------------------------ network and choices
@pytest.fixture
def undecided(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    network.reset()
    yield
    network.reset()


def test_an_unreachable_hub_is_decided_once_and_sets_offline_for_the_process(undecided, monkeypatch):
    calls = []

    def probe(host, timeout):
        calls.append((host, timeout))
        return False

    assert network.offline(probe) is True and network.offline(probe) is True
    assert calls == [("huggingface.co", network.PROBE_TIMEOUT_S)]  # one probe per process
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # later loads never wait on the network
    monkeypatch.delenv("HF_HUB_OFFLINE")


def test_the_probe_gives_up_within_its_timeout(undecided, monkeypatch):
    import socket

    def hangs(*args, **kwargs):  # a DNS lookup that hangs, then fails
        time.sleep(3)
        raise OSError("name resolution timed out")

    monkeypatch.setattr(socket, "create_connection", hangs)
    t0 = time.monotonic()
    assert network._probe("huggingface.co", 0.3) is False
    assert time.monotonic() - t0 < 2


def test_hf_ids_not_on_disk_are_not_offered_offline_but_are_online(undecided, monkeypatch):
    hf = [s.name for s in registry.list_specs() if s.source == "hf" and not registry.hf_cached(s.location)]
    if not hf:
        pytest.skip("every Hugging Face id is cached here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    off = choices.model_choices()
    assert {"toy-mamba", "toy-transformer"} <= set(off.names) and not set(hf) & set(off.names)
    assert all("HF_HUB_OFFLINE" in why for s, why in off.unavailable if s.name in hf)
    assert choices.default_selection(off) == ["toy-mamba", "toy-transformer"]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    network.reset()
    monkeypatch.setattr(network, "_probe", lambda host, timeout: True)
    on = choices.model_choices()
    assert set(hf) <= set(on.names)  # the Hub answers: the first load downloads them


def test_loading_an_uncached_hf_id_fails_at_once_when_the_hub_is_unreachable(undecided, monkeypatch):
    from backend.errors import ModelUnavailableError
    from backend.models.loading import load_generator

    spec = next((s for s in registry.list_specs() if s.source == "hf" and not registry.hf_cached(s.location)), None)
    if spec is None:
        pytest.skip("every Hugging Face id is cached here")
    monkeypatch.setattr(network, "_probe", lambda host, timeout: False)
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="not in the local Hugging Face cache"):
        load_generator(spec, device="cpu")
    assert time.monotonic() - t0 < 10
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


# ------------------------------------------------------------------ evaluation and headlines
def test_evaluation_rows_belong_to_the_weights_on_disk(tmp_path):
    rows = evaluation.evaluation_rows(ROOT / "assets" / "models", ROOT / "results")
    assert set(rows["model"]) == {"toy-mamba", "toy-mamba2", "toy-transformer"}
    assert set(rows["source"]) == {"train_h200.jsonl"}  # not the older train_h100.jsonl checkpoints
    qa = rows[(rows["model"] == "toy-mamba") & (rows["task"] == "qa_open")].iloc[0]
    assert (qa["value"], qa["n"]) == (0.81, 200) and qa["ci_low"] < 0.81 < qa["ci_high"]
    # a retrained checkpoint without records shows no numbers rather than old ones
    models = tmp_path / "models"
    shutil.copytree(ROOT / "assets" / "models" / "toy-mamba", models / "toy-mamba",
                    ignore=shutil.ignore_patterns("*.safetensors"))
    summary = json.loads((models / "toy-mamba" / "train_summary.json").read_text())
    (models / "toy-mamba" / "train_summary.json").write_text(json.dumps({**summary, "final_loss": 0.5}))
    assert evaluation.evaluation_rows(models, ROOT / "results").empty


def test_the_leaderboard_is_one_row_per_setting_with_intervals():
    rows = evaluation.evaluation_rows(ROOT / "assets" / "models", ROOT / "results")
    board = evaluation.leaderboard(rows)
    assert len(board) == len(evaluation.HEADLINE)
    assert list(board.columns) == ["task", "setting", "metric", "toy-mamba", "toy-mamba2", "toy-transformer", "n",
                                   "chance"]
    few = board[board["setting"] == "arbitrary, k=4"].iloc[0]
    assert few["chance"] == "0.50" and few["toy-mamba"].startswith("0.540 [")
    assert len(evaluation.leaderboard(rows, headline=False)) == len(rows) // 3


def test_headlines_come_from_the_committed_files():
    rows = evaluation.evaluation_rows(ROOT / "assets" / "models", ROOT / "results")
    hs = headlines.headlines(ROOT / "results", rows)
    assert [h.page for h in hs] == ["pages/models.py", "pages/long_context.py", "pages/performance.py",
                                    "pages/performance.py"]
    gpu = hs[2]
    assert gpu.source == "bench_h200.jsonl" and "NVIDIA H200" in gpu.title
    assert "At 32,768 tokens: mamba-1.4b 2.01 ms, pythia-1.4b 4.14 ms" in gpu.text
    assert headlines.headlines(ROOT / "no-such-folder") == []


# ------------------------------------------------------------------ explanations
def test_every_kernel_path_and_attention_path_has_a_sentence():
    from backend.arena.explain import path_explanation, weight_bytes
    from backend.generation.interface import ModelInfo
    from kernels.dispatch import PATHS

    for path in (*PATHS, "sdpa", "eager", "hf-torch", "fake"):
        text = path_explanation(path, "mamba", "cpu")
        assert text.startswith("Ran on ") and f"'{path}' path" not in text, path
    assert "one position at a time" in path_explanation("reference", "mamba", "Intel Xeon")
    assert "CUDA graph" in path_explanation("sdpa+static+cudagraph", "transformer", "NVIDIA H100")
    assert "static cache" in path_explanation("sdpa+static+cudagraph", "transformer", "NVIDIA H100")
    assert path_explanation("new-path") == "Ran on the 'new-path' path."
    info = ModelInfo("m", "mamba", n_params=8_057_088, dtype="bfloat16", device="cpu", max_context=None)
    assert weight_bytes(info) == 2 * 8_057_088
