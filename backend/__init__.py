"""backend: everything behind the dashboard and the command line (no Streamlit here).

Module map (one room per job; `python -m backend --help` lists the commands):

    errors.py       user-facing errors: one or two sentences, what happened and what to do
    runinfo.py      what every recorded run carries: git sha, library versions, device name, host
    device.py       device and dtype resolution, and the clock barrier (synchronize) every timing uses
    rag.py          RAG glue: retrieved chunks -> a prompt, asking the models, recording a RAG question
    history.py      the History page's frames: device per row (compile targets are no device), the newest
                    run, plot rows with a capped number of series, failed models, past generations

    arena/          a first visit and the blind A/B mode: trained-format examples with references and
                    right / wrong marking, the models a page may offer (network decided once), path and
                    memory explanations, the bundled models' held-out leaderboard, the start page's
                    headlines, blind pairs and votes, Bradley-Terry scores with bootstrap intervals

    models/         which models exist and how they load: registry, loading, the per-process manager,
                    untrained placeholders for the bundled trio, the fake backend for UI tests, whether
                    the Hugging Face Hub can be reached (network.py, decided once per process)
    generation/     the one decode loop both families share (decode.py), its steppers (transformer static
                    cache + CUDA graph, SSM state + CUDA graph), the patch that routes Hugging Face SSMs
                    through kernels/ (ssm_fast.py), metrics, the side-by-side job, recording a generation
    experiments/    few-shot, long-context, chain-of-thought and RAG: task registry and plans, runner,
                    parallel workers, metrics, summaries and the generated docs/results.md
    bench/          the fair speed / memory benchmark (sweeps, one process per model, analysis), and the
                    kernel, SSM end-to-end, training-op and retrieval benchmarks
    inside/         the inside view: hooks on the Hugging Face modules (SSM step size, decays, state norms;
                    attention rows), retained share of each token, pass-key / RAG instances, the three SSD
                    forms (recurrence, chunked, quadratic attention form) and the selective-copy toy
    scale/          scale out on Ray (an optional extra): connecting, shard resources and retries, the control
                    actor and the driver's merge loop; experiment / benchmark shards live in their rooms
    training/       trains and evaluates the bundled toy trio: definitions, lockstep loop, training paths and
                    SSM training ops, parallel runs, train speed, eval suite, model cards, checkpoint archives
    toyworld/       the procedurally generated fictional world: corpus, held-out tasks, tokenizer (pure data)
    cli/            `python -m backend <command>`: argument parsing only, one module per command

Layering (tests/test_architecture.py checks it from the imports): kernels/, store/ and retrieval/ never
import backend/; backend/ never imports Streamlit; there are no import cycles.
"""
