"""Choose each model's training path, trusting our fast SSM training ops only after an end-to-end check.

`choose_path(model, family, x, y, mode)`: for Mamba / Mamba-2 / a hybrid (its Mamba-2 layers, kind "mamba2";
attention layers and MLPs stay transformers') with mode "auto" or "on", patch the model with
`backend.training.ssm_ops.enable_training`, then compare the loss and the gradient of every parameter on a short
slice of a real batch (fp32, no autocast) against transformers' own training forward. If they agree, the
fast path stays; if not (or it raises), the model is put back on transformers' path ("auto") or the error
is raised ("on"). Returns (path_name, check_record) for the training summary.

Why a check at run time: the training kernels are tested on CPU under the Triton interpreter in CI, but
the GPU compiler can differ (a race seen only on an H100 once): a silently wrong gradient would waste a
whole training budget, so the run verifies on its own device before it starts.
"""

from __future__ import annotations

import math

from backend.training import ssm_ops

HF_PATH = {"mamba": "hf-mambapy", "mamba2": "hf-torch", "transformer": "sdpa", "hybrid": "hf-torch"}
SSM_KIND = {"mamba": "mamba", "mamba2": "mamba2", "hybrid": "mamba2"}  # family -> the ssm_ops kind it trains with


def _loss_and_grads(model, x, y):
    import torch.nn.functional as F

    model.zero_grad(set_to_none=True)
    logits = model(input_ids=x, use_cache=False).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


def compare(model, x, y, enable, disable, tol: float = 2e-3) -> dict:
    """Loss and per-parameter gradient relative errors of the patched model against the original."""
    ref_loss, ref_g = _loss_and_grads(model, x, y)
    enable()
    try:
        loss, g = _loss_and_grads(model, x, y)
    finally:
        disable()
    worst, worst_name = 0.0, ""
    for name, r in ref_g.items():
        if name not in g:
            return {"ok": False, "reason": f"no gradient for {name} on the fast path"}
        err = float((g[name] - r).norm() / (r.norm() + 1e-12))
        if not math.isfinite(err):
            err = float("inf")
        if err > worst:
            worst, worst_name = err, name
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    ok = loss_err < tol and worst < 50 * tol and math.isfinite(loss)
    return {"ok": ok, "loss_ref": round(ref_loss, 6), "loss_fast": round(loss, 6), "loss_rel_err": loss_err,
            "grad_max_rel_err": worst, "grad_worst_param": worst_name, "slice": list(x.shape)}


def choose_path(model, family: str, x, y, mode: str = "auto", log=print) -> tuple[str, dict]:
    kind = SSM_KIND.get(family)
    if kind is None or mode == "off" or not ssm_ops.has_mixers(model, kind):  # e.g. a hybrid of other mixers
        return HF_PATH[family], {}

    xs, ys = x[:2, :256], y[:2, :256]
    was_training = model.training
    model.train()
    try:
        check = compare(model, xs, ys, lambda: ssm_ops.enable_training(model, kinds=(kind,)),
                        lambda: ssm_ops.disable_training(model))
    except Exception as e:  # any failure of the fast path: fall back ("auto") or raise ("on")
        if mode == "on":
            raise
        check = {"ok": False, "reason": f"{type(e).__name__}: {e}"}
    finally:
        model.train(was_training)
    if check.get("ok"):
        paths = ssm_ops.enable_training(model, kinds=(kind,))
        log(f"{family}: fast training path {paths[kind]} verified ({check})")
        return paths[kind], check
    if mode == "on":
        raise RuntimeError(f"The fast {family} training path disagrees with transformers' own: {check}")
    log(f"{family}: fast training path rejected, using transformers' ({check})")
    return HF_PATH[family], check
