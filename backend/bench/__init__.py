"""Benchmarks. The fair speed and memory benchmark (`python -m backend bench`): SSMs vs transformers
through one decode loop.

    shapes.py     model shapes (random weights in the real sizes; the bundled trio) and the pairs compared
    steppers.py   which decode stepper each family gets (its best standard path) and how to load models
    measure.py    one measured point: warm-up, synchronised clocks, repeats, medians; HF generate() baseline
    sweep.py      the sweep over prompt length / new tokens / batch, OOM caught and recorded, time budget
    isolate.py    one model per child process (`bench-child`), so a crash loses one model, not the sweep
    analysis.py   pure pandas: crossovers, the Mamba-paper throughput ratio, sentences for the page
    numbers.py    markdown tables of a stored bench run (for docs/results.md)

Other benchmarks:
    kernels.py    `kernel-bench`: each SSM kernel vs copy bandwidth, the reference, HF, mamba-ssm
    train_ops.py  `kernel-bench --ssd-train`: a Mamba-2 mixer's forward + backward, HF's path vs ours
    ssm.py        `ssm-bench`: end-to-end Mamba / Mamba-2 prefill and decode with our kernels
    retrieval.py  `retrieval-bench`: PDF parse, chunk + embed throughput, search latency, recall

Only analysis.py is imported by the Performance page; it needs no torch.
"""
