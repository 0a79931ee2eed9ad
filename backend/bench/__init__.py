"""The fair speed and memory benchmark (issue 7): SSMs vs transformers through one decode loop.

    shapes.py    model shapes (random weights in the real sizes; the bundled trio) and the pairs compared
    steppers.py  which decode stepper each family gets (its best standard path) and how to load models
    measure.py   one measured point: warm-up, synchronised clocks, repeats, medians; HF generate() baseline
    sweep.py     the sweep over prompt length / new tokens / batch, OOM caught and recorded, time budget
    analysis.py  pure pandas: crossovers, the Mamba-paper throughput ratio, sentences for the page

Only analysis.py is imported by the Performance page; it needs no torch.
"""
