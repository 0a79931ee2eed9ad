"""Generation: the one decode loop every model runs through, and what measures it.

    interface.py    Generator, GenSettings, TokenEvent, GenerationResult, GenMetrics (the model interface)
    decode.py       HFGenerator: tokenize -> prefill -> pick -> step ... with timing and cache accounting
    steppers.py     the model-specific half of the loop (eager stepper; registry of faster ones)
    tf_stepper.py   transformer: SDPA, a static KV cache, the step captured in a CUDA graph
    ssm_stepper.py  Mamba / Mamba-2: static conv + SSM state, the step in a CUDA graph on a GPU
    ssm_fast.py     routes Hugging Face Mamba / Mamba-2 / Bamba (hybrid) SSM prefill and decode through kernels/
    cpu_prefill.py  CPU: a prompt through every block with each layer's kernels bound once (SSMs and the hybrid)
    cpu_decode.py   CPU: a decode step through every block with the fused kernels bound once per sequence
    metrics.py      percentiles, peak memory, cache bytes
    compare.py      the side-by-side job behind the Arena and RAG pages (worker threads fill a queue)
    recording.py    a side-by-side generation -> one run in the store
"""
