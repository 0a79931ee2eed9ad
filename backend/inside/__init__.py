"""The inside view: what each model keeps from the prompt, read from the loaded models through hooks.

    data.py       the Inspection record (arrays per layer and token), its .npz file, the numbers pages plot, the
                  length limit and InspectError (numpy / pandas only: the pages import it)
    core.py       inspect(generator, prompt, ...) -> Inspection: the one entry point; families mamba, mamba2,
                  transformer and hybrid (Bamba: both readings from one forward), any other refused in a sentence
    ssm.py        Mamba / Mamba-2 (and a hybrid's BambaMixer layers): hooks on the mixers' projections, Δ, state
                  norms, decay products, implicit attention rows; `layer_index`: a module's layer in the model
    attention.py  transformers and a hybrid's attention layers: head-averaged attention maps through Hugging
                  Face's eager attention, and which layer of the model each map came from
    instances.py  pass-key and RAG experiment instances with the planted key / gold passage as char spans
    batch.py      what the pages and `python -m backend inspect` run (torch loads inside its functions)
    ssd.py        the explainer's Mamba-2 layer three ways: recurrence, chunked SSD, quadratic masked form
    explain.py    the explainer's SSD demonstration on a loaded Mamba-2 (torch)
    toys.py       the explainer's torch-free demonstrations: selection in one channel, selective copying input,
                  cache bytes against prompt length
"""
