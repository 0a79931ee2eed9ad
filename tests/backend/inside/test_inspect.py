"""backend.inside.core / data / instances / batch and `python -m backend inspect`, on tiny real models loaded
through the user path (registry entry -> loading -> HFGenerator) and on the fake backend."""

from __future__ import annotations

import argparse
import types

import numpy as np
import pytest

from backend.cli import inspect as cmd
from backend.generation.interface import GenSettings
from backend.inside import batch, core, data, instances
from backend.models import registry
from backend.models.fake import FakeGenerator
from tests.backend.helpers import tiny_generator

PROMPT = "Passkey: 58213. Remember it, the passkey is 58213. The river flows north.\nQuestion: the passkey?"
KEY_SPANS = [("pass key", PROMPT.index("58213"), PROMPT.index("58213") + 5),
             ("pass key", PROMPT.rindex("58213"), PROMPT.rindex("58213") + 5)]


@pytest.mark.parametrize("arch", ["mamba", "mamba2", "llama"])
def test_inspect_a_loaded_model_with_an_output_and_highlights(tiny_dirs, tmp_path, arch):
    gen = tiny_generator(tiny_dirs, arch)
    n_prompt = gen.count_tokens(PROMPT)
    insp = core.inspect(gen, PROMPT, output_ids=[7, 8, 9], char_spans=KEY_SPANS)
    assert insp.n_prompt == n_prompt and len(insp.tokens) == len(insp.token_ids) == n_prompt + 3
    assert insp.token_ids[-3:] == [7, 8, 9]
    assert [s.label for s in insp.spans] == ["pass key", "pass key"]
    for s in insp.spans:  # the tokens of each span decode back to the key (and nothing around it)
        assert "".join(insp.tokens[s.start:s.end]).strip() == "58213"
    L, Y = len(insp.tokens), 2
    if arch == "llama":
        assert set(insp.arrays) == {"attention"} and insp.arrays["attention"].shape == (Y, L, L)
        assert "eager attention" in insp.meta["forward"]
        kept = insp.kept(n_prompt - 1)
        assert kept[n_prompt:].sum() == 0 and kept.sum() == pytest.approx(1.0, abs=1e-5)
    else:
        assert insp.arrays["delta"].shape == (Y, L) and insp.arrays["check"].max() < 1e-4
        assert insp.references() == [n_prompt - 1, n_prompt, n_prompt + 1, L - 1]  # prompt end, outputs, end
        assert [insp.position(a) for a in (0, 1, 2, 3, 9, "end")] == [n_prompt - 1 + k for k in (0, 1, 2, 3, 3, 3)]
        assert np.isnan(insp.kept(n_prompt - 1)[n_prompt:]).all() and insp.kept()[-1] == pytest.approx(1.0)
        assert "read by hooks" in insp.meta["forward"]
        with pytest.raises(ValueError, match="exist at positions"):
            insp.retained_at(3)
    stats = data.spans_table([insp])
    assert len(stats) == 2 and (stats["position"] == n_prompt - 1).all()
    assert ((stats["weight"] >= 0) & (stats["weight"] <= 1)).all() and (stats["tokens"] == insp.spans[0].end - insp.spans[0].start).all()
    assert (stats["uniform"] == stats["tokens"] / n_prompt).all()
    path = data.save(insp, tmp_path / f"{arch}.npz")
    back = data.load(path)
    assert back.tokens == insp.tokens and back.spans == insp.spans and back.meta["forward"] == insp.meta["forward"]
    for k, v in insp.arrays.items():
        np.testing.assert_array_equal(back.arrays[k], v)
    line = data.summary_line(back)
    assert line.startswith(f"tiny-{arch} (") and f"pass key (5 tokens) at token {n_prompt - 1}: weight" in line
    assert f"pass key (5 tokens) at token {n_prompt}: weight" in data.summary_line(back, 1)


def test_new_tokens_are_generated_then_inspected(tiny_dirs):
    gen = tiny_generator(tiny_dirs, "mamba2")
    insp = core.inspect(gen, "The river flows", new_tokens=4)
    expected = gen.generate("The river flows", GenSettings(max_new_tokens=4)).token_ids
    assert insp.token_ids[insp.n_prompt:] == expected and 1 <= len(expected) <= 4


def test_refusals_are_sentences(tiny_dirs, monkeypatch):
    gen = tiny_generator(tiny_dirs, "llama")
    with pytest.raises(core.InspectError, match="over the inside view's limit of 5 .*Shorten the prompt"):
        core.inspect(gen, PROMPT, max_tokens=5)
    monkeypatch.setenv(core.ENV_MAX_TOKENS, "6")
    assert core.max_tokens_setting() == 6
    with pytest.raises(core.InspectError, match="limit of 6"):
        core.inspect(gen, PROMPT)
    monkeypatch.setenv(core.ENV_MAX_TOKENS, "many")
    with pytest.raises(core.InspectError, match="whole number"):
        core.max_tokens_setting()
    with pytest.raises(core.InspectError, match="fake backend .*Unset SSM_ARENA_FAKE"):
        core.inspect(FakeGenerator("toy-mamba", "mamba"), PROMPT)
    hybrid = types.SimpleNamespace(info=types.SimpleNamespace(name="zamba", family="hybrid", path=""),
                                   model=gen.model, tokenizer=gen.tokenizer)
    with pytest.raises(core.InspectError, match="hybrid model; the inside view reads Mamba"):
        core.inspect(hybrid, PROMPT)
    with pytest.raises(core.InspectError, match="prompt is empty"):
        core.inspect(tiny_generator(tiny_dirs, "mamba"), "  ")


def test_highlights_of_passkey_and_rag_docs():
    prompt = "a 4711 b. The pass key is 90210. c 90210 d\nQuestion: What is the pass key?\nAnswer:"
    doc = {"context": prompt.split("\n")[0], "answer": "90210"}
    spans, note = instances.highlights(doc, prompt)
    assert [prompt[a:b] for _, a, b in spans] == ["90210", "90210"] and note == ""
    ctx = "first passage\ngold one here\nthird"
    rag = {"context": ctx, "gold_doc_id": "g", "context_doc_ids": ["x", "g", "y"], "retrieved_doc_ids": ["g"]}
    prompt = f"{ctx}\nQuestion: q\nAnswer:"
    spans, _ = instances.highlights(rag, prompt)
    assert [(label, prompt[a:b]) for label, a, b in spans] == [("gold passage", "gold one here")]
    spans, note = instances.highlights({**rag, "context_doc_ids": ["x", "y", "z"]}, prompt)
    assert spans == [] and "not retrieved" in note
    spans, note = instances.highlights({"context": "", "gold_doc_id": "g", "retrieved_doc_ids": []}, "Question: q")
    assert spans == [] and "cannot be located" in note


def test_passkey_instance_from_the_experiment_plan(tiny_dirs):
    gen = tiny_generator(tiny_dirs, "mamba")
    text = batch.source_text(passkey=(120, 0.5), seed=3, count_tokens=gen.count_tokens)
    again = instances.from_plan(instances.passkey_config(120, 0.5, seed=3), instance_id=text.id,
                                count_tokens=gen.count_tokens)
    assert again.prompt == text.prompt and text.id.startswith("length=120/depth=0.5")
    assert text.char_spans and all(text.prompt[a:b] == text.reference for _, a, b in text.char_spans)
    assert text.prompt.rstrip().endswith("Answer:")
    with pytest.raises(core.InspectError, match="Give a prompt"):
        batch.source_text(prompt=" ")


def test_batch_keeps_going_past_a_model_that_cannot_be_inspected(tiny_dirs, tmp_path):
    gens = {"tiny-mamba": tiny_generator(tiny_dirs, "mamba"), "fake": FakeGenerator("fake", "mamba")}
    out = batch.inspect_models(gens.__getitem__, ["fake", "tiny-mamba"], instances.InstanceText("prompt", PROMPT, ""),
                               out_dir=tmp_path)
    assert out[0].inspection is None and "fake backend" in out[0].error
    assert out[1].error is None and out[1].path == tmp_path / "tiny-mamba.npz" and out[1].path.is_file()


def test_cli_writes_npz_files_and_prints_a_line_per_model(tiny_dirs, tmp_path, capsys):
    registry.add_local_model(tiny_dirs["mamba2"], name="tiny-m2")
    registry.add_local_model(tiny_dirs["gpt_neox"], name="tiny-neox")
    p = argparse.ArgumentParser()
    cmd.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["inspect", "--model", "tiny-m2,tiny-neox", "--prompt", PROMPT, "--new-tokens", "2",
                         "--out", str(tmp_path), "--device", "cpu"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("tiny-m2 (mamba2, 2 layers") and "tiny-neox (transformer" in lines[1]
    assert lines[0].endswith(str(tmp_path / "tiny-m2.npz")) and "rows sum to 1 within" in lines[1]
    back = data.load(tmp_path / "tiny-neox.npz")
    assert back.n_prompt + 2 >= len(back.tokens) > back.n_prompt and back.meta["instance"] == "prompt"


def test_cli_inspects_an_instance_of_a_stored_run(tiny_dirs, tmp_path, capsys):
    from store import open_store

    registry.add_local_model(tiny_dirs["llama"], name="tiny-l")
    config = instances.passkey_config(64, 0.0, seed=1, models=["tiny-l"])
    run_id = open_store().start_run(config.kind, config.to_dict(), {})
    gen = tiny_generator(tiny_dirs, "llama")  # same tokenizer as tiny-l: the plan is the one the run saw
    expected = instances.from_plan(config, query=0, count_tokens=gen.count_tokens)
    p = argparse.ArgumentParser()
    cmd.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["inspect", "--model", "tiny-l", "--run", run_id[:8], "--instance", expected.id,
                         "--out", str(tmp_path), "--device", "cpu"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"instance {expected.id} (reference {expected.reference!r}): {len(expected.char_spans)} highlighted span(s)")
    assert data.load(tmp_path / "tiny-l.npz").meta["instance"] == expected.id
    args = p.parse_args(["inspect", "--model", "tiny-l", "--run", run_id])
    with pytest.raises(core.InspectError, match="--run needs --instance"):
        args.func(args)
