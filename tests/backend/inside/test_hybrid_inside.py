"""The inside view on a hybrid (Hugging Face BambaForCausalLM: Mamba-2 layers and attention layers), a tiny one with
random weights saved to a folder: the SSM readings of exactly its Mamba layers, the attention maps of exactly its
attention layers, on one token axis and named by their layer in the model, from our fast path and from Hugging
Face's; the .npz, the summary line, the tables, `python -m backend inspect`; the refusals that remain."""

from __future__ import annotations

import argparse
import threading
import types

import numpy as np
import pytest
import torch

from backend.cli import inspect as cmd
from backend.inside import attention, core, data, ssm
from backend.models import registry
from tests.backend import helpers
from tests.backend.helpers import tiny_generator

LAYERS, ATTN = 4, [1]
MAMBA = [i for i in range(LAYERS) if i not in ATTN]
HEADS = 4
PROMPT = "Passkey: 58213. Remember it, the passkey is 58213. The river flows north.\nQuestion: the passkey?"
KEY = [("pass key", PROMPT.index("58213"), PROMPT.index("58213") + 5)]


def build_tiny_hybrid(folder):
    """A tiny Bamba: layers 0, 2, 3 Mamba-2 (2 groups), layer 1 attention, A / D / dt / conv bias perturbed."""
    return helpers.build_tiny_hybrid(folder, layers=LAYERS, attn=tuple(ATTN), groups=2, perturb=True)


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    return build_tiny_hybrid(tmp_path_factory.mktemp("tiny-hybrid"))


def hf_generator(folder):
    """The same folder on Hugging Face's own path (no kernels patched in), as a generator the view accepts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = types.SimpleNamespace(name="hf-hybrid", family="hybrid", path="hf-torch", device="cpu", dtype="float32",
                                 placeholder=False)
    return types.SimpleNamespace(info=info, lock=threading.Lock(), tokenizer=AutoTokenizer.from_pretrained(folder),
                                 model=AutoModelForCausalLM.from_pretrained(folder).eval())


@pytest.mark.parametrize("path", ["ours", "hf"])
def test_a_hybrid_reads_its_mamba_layers_and_its_attention_layers(hybrid_dir, path, monkeypatch):
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    gen = tiny_generator({"bamba": hybrid_dir}, "bamba") if path == "ours" else hf_generator(hybrid_dir)
    if path == "ours":
        assert gen.info.family == "hybrid" and gen.model.arena_path == "cpu-chunked"
    insp = core.inspect(gen, PROMPT, output_ids=[7, 8, 9], char_spans=KEY)
    n, L = insp.n_prompt, len(insp.tokens)
    assert insp.family == "hybrid" and L == n + 3 and insp.has_ssm and insp.has_attention and not insp.is_ssm
    assert insp.layers("ssm").tolist() == MAMBA and insp.layers("attention").tolist() == ATTN
    assert insp.n_layers == LAYERS
    for k in ("delta", "state_norm", "change", "retained", "weight", f"retained@{n - 1}", f"weight@{n}"):
        assert insp.arrays[k].shape == (len(MAMBA), L), k
    assert insp.arrays["delta_heads"].shape == (len(MAMBA), L, HEADS) and insp.arrays["check"].shape == (len(MAMBA),)
    assert insp.arrays["check"].max() < 1e-4  # the recurrence re-run matches each Mamba layer's own output
    assert insp.references() == [n - 1, n, n + 1, L - 1]
    att = insp.arrays["attention"]
    assert att.shape == (len(ATTN), L, L) and np.allclose(att.sum(-1), 1, atol=1e-5)
    assert np.triu(att, 1).max() == 0  # causal
    assert "read by hooks" in insp.meta["forward"] and "eager attention" in insp.meta["forward"]
    # the same readings as each family's own path on the same model (separate forwards)
    ids = torch.tensor([insp.token_ids])
    maps, _ = attention.attention_maps(gen.model, ids)
    np.testing.assert_allclose(maps, att, atol=1e-5)
    alone, _ = ssm.trace(gen.model, ids, ends=(n - 1,))
    for k in ("delta", "state_norm", "retained", f"retained@{n - 1}", "weight"):
        np.testing.assert_allclose(alone[k], insp.arrays[k], rtol=1e-4, atol=1e-5)
    # what each kind keeps, on one token axis
    assert np.isnan(insp.kept(n - 1)[n:]).all() and insp.kept()[-1] == pytest.approx(1.0)
    assert insp.kept(n - 1, part="attention")[n:].sum() == 0
    assert insp.kept(n - 1, part="attention").sum() == pytest.approx(1.0, abs=1e-5)


def test_a_hybrids_tables_file_and_summary(hybrid_dir, tmp_path):
    gen = tiny_generator({"bamba": hybrid_dir}, "bamba")
    insp = core.inspect(gen, PROMPT, output_ids=[7, 8], char_spans=KEY)
    n, L = insp.n_prompt, len(insp.tokens)
    back = data.load(data.save(insp, tmp_path / "h.npz"))
    assert back.family == "hybrid" and back.layers("ssm").tolist() == MAMBA
    assert back.layers("attention").tolist() == ATTN and set(back.arrays) == set(insp.arrays)
    rows = data.layer_frame(back, "delta")["row"].unique().tolist()
    assert rows == [f"layer {y}" for y in MAMBA]
    frame = data.layer_frame(back, "attention", n - 1)
    assert frame["row"].unique().tolist() == [f"layer {y}" for y in ATTN] and len(frame) == len(ATTN) * L
    kept = data.kept_frame([back], 0, query=2)
    assert kept["row"].unique().tolist() == [f"tiny-bamba: retained in the state at token {n - 1} (Mamba layers)",
                                             "tiny-bamba: attention at token 2 (attention layers)"]
    stats = data.spans_table([back])
    assert len(stats) == 1 and 0 <= stats["weight"][0] <= 1 and not np.isnan(stats["retained"][0])
    line = data.summary_line(back)
    assert line.startswith(f"tiny-bamba (hybrid, {LAYERS} layers")
    assert "Mamba layers 0, 2, 3: mean Δ" in line and "attention layers 1: attention of the last position" in line
    assert "pass key (5 tokens)" in line and "retained" in line


def test_files_without_layer_numbers_read_as_every_layer(tiny_dirs):
    """Pure families (and files written before hybrids) carry no layer numbers: their rows are layers 0 .. Y-1."""
    m2 = core.inspect(tiny_generator(tiny_dirs, "mamba2"), PROMPT)
    assert "ssm_layers" not in m2.arrays and m2.layers("ssm").tolist() == [0, 1] and m2.n_layers == 2
    assert m2.layers("attention").tolist() == [] and not m2.has_attention
    tf = core.inspect(tiny_generator(tiny_dirs, "llama"), PROMPT)
    assert set(tf.arrays) == {"attention"} and tf.layers("attention").tolist() == [0, 1] and tf.n_layers == 2
    assert attention.attention_layers(tiny_generator(tiny_dirs, "llama").model, 2) == [0, 1]


def test_families_it_cannot_read_are_refused_in_a_sentence(tiny_dirs):
    gen = tiny_generator(tiny_dirs, "llama")
    made_up = types.SimpleNamespace(info=types.SimpleNamespace(name="odd", family="rwkv", path=""),
                                    model=gen.model, tokenizer=gen.tokenizer)
    with pytest.raises(core.InspectError, match="'odd' is a rwkv model; the inside view reads Mamba, Mamba-2 and "
                                                 "transformer models, and hybrids .*Pick one of those"):
        core.inspect(made_up, PROMPT)
    no_mixer = types.SimpleNamespace(info=types.SimpleNamespace(name="jamba", family="hybrid", path=""),
                                     model=gen.model, tokenizer=gen.tokenizer)
    with pytest.raises(core.InspectError, match="hybrid model; .*no SSM layer found in it"):
        core.inspect(no_mixer, PROMPT)


def test_cli_inspects_a_registered_hybrid(hybrid_dir, tiny_dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SSM_ARENA_KERNELS", raising=False)
    registry.add_local_model(hybrid_dir, name="tiny-hybrid")
    registry.add_local_model(tiny_dirs["mamba2"], name="tiny-m2")
    p = argparse.ArgumentParser()
    cmd.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["inspect", "--model", "tiny-hybrid,tiny-m2", "--prompt", PROMPT, "--new-tokens", "2",
                         "--out", str(tmp_path), "--device", "cpu"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"tiny-hybrid (hybrid, {LAYERS} layers")
    assert "cpu-chunked mixer forward, read by hooks; eager attention" in lines[0]
    assert lines[0].endswith(str(tmp_path / "tiny-hybrid.npz")) and lines[1].startswith("tiny-m2 (mamba2, 2 layers")
    back = data.load(tmp_path / "tiny-hybrid.npz")
    assert back.layers("ssm").tolist() == MAMBA and back.layers("attention").tolist() == ATTN
    assert back.arrays["check"].max() < 1e-4 and back.arrays["attention"].shape[1] == len(back.tokens)
