"""Copy-task regression for the Mamba-1 training path (issue #13, item 3: toy-mamba never learned to copy).

A tiny MambaForCausalLM (2 layers, d_inner 16, d_state 16) learns to copy six symbols, "<bos> s1..s6 <sep>
s1..s6" with the loss on the copy only, in a few hundred AdamW steps. From the same initial weights and on
the same batches, training through transformers' own forward (mambapy's parallel scan, what `--fast-ssm off`
runs) and through ours (`backend/training/ssm_ops.py` + `kernels/selective_scan_train.py`) must give

  - the same losses step for step while the two runs are still numerically close (the first 30 steps; later,
    fp32 rounding differences get amplified where the loss drops fast, by as much as between transformers'
    own parallel and sequential scans, so later steps are compared by what the runs reach),
  - two models that both copy held-out sequences, with the same greedy outputs,
  - at the weights the run reached (copying learned), the same loss and parameter gradients.

On a GPU our run uses the compiled Triton kernels throughout. On CPU the Triton interpreter needs ~1 s per
step here, so the 300-step run goes through our forward with the reference scan, and the Triton kernels
(interpreter) are run in lockstep with transformers' path for the first steps and checked at the trained
weights (`test_triton_kernels_train_like_hf`).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import tests.kernels.conftest  # noqa: F401  (vectorised interpreter scan: same results, faster)
from backend.training import ssm_ops
from backend.training.paths import compare

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
VOCAB, BOS, SEP, N_SYMBOLS, K = 16, 0, 1, 8, 6  # symbols are ids 2..9; the rest of the vocabulary is unused
STEPS, BATCH, LR = 300, 8, 2e-2
LOCKSTEP = 30  # steps over which the two runs must agree step for step


def copy_batch(gen: torch.Generator, batch: int = BATCH):
    """(x, y): x = <bos> s1..sK <sep> s1..s(K-1); y = next tokens, -100 where they are unpredictable."""
    sym = torch.randint(2, 2 + N_SYMBOLS, (batch, K), generator=gen)
    ids = torch.cat([torch.full((batch, 1), BOS), sym, torch.full((batch, 1), SEP), sym], 1)
    x, y = ids[:, :-1], ids[:, 1:].clone()
    y[:, :K] = -100
    return x.to(DEVICE), y.to(DEVICE)


def tiny_mamba():
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    cfg = MambaConfig(vocab_size=VOCAB, hidden_size=8, state_size=16, num_hidden_layers=2, expand=2, conv_kernel=4,
                      use_mambapy=True, initializer_range=0.02, tie_word_embeddings=True, pad_token_id=BOS)
    return MambaForCausalLM(cfg).to(DEVICE).train()


def train(model, steps: int) -> list[float]:
    """fp32 AdamW steps with gradient clipping, as backend/training/loop.py's train_step; returns the losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        x, y = copy_batch(gen)
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@torch.no_grad()
def greedy_copies(model, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, outputs), each (n, K): K greedy tokens after "<bos> s1..sK <sep>" (full forwards, eval mode)."""
    was_training = model.training
    model.eval()
    x, _ = copy_batch(torch.Generator().manual_seed(7), n)
    seq = x[:, :K + 2]
    for _ in range(K):
        nxt = model(input_ids=seq, use_cache=False).logits[:, -1].argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
    model.train(was_training)
    return x[:, 1:K + 1], seq[:, K + 2:]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These ops are tiny: two threads on a busy 2-core machine made the runs ten times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(one_thread):
    """Both 300-step runs from the same initial weights on the same batches (fp32, no TF32)."""
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("SSM_ARENA_KERNELS", raising=False)  # auto: Triton on a GPU, the reference scan on CPU
            hf = tiny_mamba()
            hf_losses = train(hf, STEPS)
            ours = tiny_mamba()
            paths = ssm_ops.enable_training(ours, kinds=("mamba",))
            ours_losses = train(ours, STEPS)
            ssm_ops.disable_training(ours)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"hf": (hf, hf_losses), "ours": (ours, ours_losses), "paths": paths}


def _mean(xs):
    return sum(xs) / len(xs)


def test_losses_agree_step_for_step_then_both_learn(runs):
    assert runs["paths"] == {"mamba": "triton-train" if DEVICE == "cuda" else "reference-train"}
    (_, hf), (_, ours) = runs["hf"], runs["ours"]
    assert len(hf) == len(ours) == STEPS
    for step in range(LOCKSTEP):
        assert abs(ours[step] - hf[step]) <= 1e-3 * hf[step], (step, ours[step], hf[step])
    # the task is learned (so the comparison has teeth): from chance (ln 8 = 2.08) to near zero, both ways
    assert _mean(hf[:10]) > 1.9 and _mean(ours[:10]) > 1.9
    assert _mean(hf[-25:]) < 0.1 and _mean(ours[-25:]) < 0.1, (_mean(hf[-25:]), _mean(ours[-25:]))
    assert abs(_mean(ours) - _mean(hf)) < 0.15 * _mean(hf), (_mean(ours), _mean(hf))


def test_both_copy_held_out_sequences_with_the_same_outputs(runs):
    want, out_hf = greedy_copies(runs["hf"][0])
    _, out_ours = greedy_copies(runs["ours"][0])
    assert (out_hf == want).all(1).float().mean() >= 0.95
    assert (out_ours == want).all(1).float().mean() >= 0.95
    assert (out_ours == out_hf).all(1).float().mean() >= 0.95


@pytest.mark.slow
def test_triton_kernels_train_like_hf(runs, monkeypatch):
    """The Triton kernels (compiled on a GPU, the interpreter on CPU) in lockstep with transformers' path for
    the first steps, and at the trained weights: same loss, same gradient for every parameter."""
    monkeypatch.setenv("SSM_ARENA_KERNELS", "triton")
    n = 12
    hf_losses = train(tiny_mamba(), n)
    ours = tiny_mamba()
    assert ssm_ops.enable_training(ours, kinds=("mamba",)) == {"mamba": "triton-train"}
    ours_losses = train(ours, n)
    for step in range(n):
        assert abs(ours_losses[step] - hf_losses[step]) <= 1e-4 * hf_losses[step], (step, ours_losses, hf_losses)
    assert ours_losses == pytest.approx(runs["hf"][1][:n], rel=1e-4)  # the long run started the same way

    trained = copy.deepcopy(runs["hf"][0]).train()  # copying learned: decays and gates far from their init
    x, y = copy_batch(torch.Generator().manual_seed(11), 16)
    check = compare(trained, x, y, lambda: ssm_ops.enable_training(trained, kinds=("mamba",)),
                    lambda: ssm_ops.disable_training(trained))
    assert check["loss_rel_err"] < 1e-5 and check["grad_max_rel_err"] < 1e-4, check
    assert check["loss_ref"] < 0.1  # these are the weights of a model that copies


@pytest.mark.skipif(DEVICE == "cuda", reason="the CPU paths")
@pytest.mark.parametrize("kernels", ["auto", "reference"])
def test_cpu_trains_through_the_reference_scan(kernels, monkeypatch):
    """On CPU tensors (outside a forced interpreter run) the training scan is the reference, also when the
    dispatcher picks its CPU fast path for inference ("cpu-chunked" has no training op; the Triton op cannot
    run on CPU tensors there), and the step matches transformers'."""
    monkeypatch.setenv("SSM_ARENA_KERNELS", kernels)
    model = tiny_mamba()
    x, y = copy_batch(torch.Generator().manual_seed(3))
    check = compare(model, x, y, lambda: ssm_ops.enable_training(model, kinds=("mamba",)),
                    lambda: ssm_ops.disable_training(model))
    assert check["ok"] and check["grad_max_rel_err"] < 1e-4, check
    assert ssm_ops.enable_training(model, kinds=("mamba",)) == {"mamba": "reference-train"}
    ssm_ops.disable_training(model)
