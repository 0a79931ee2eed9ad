"""Training and evaluating the bundled toy models (the trio Mamba, Mamba-2, Transformer; the hybrid and the
depth-matched transformer of issue 14).

    trio.py         the parameter-matched model definitions per family and size (standard Hugging Face classes)
    config.py       TrainConfig: every setting of a run, and its command-line flags
    data.py         the shared token stream, its shuffled windows, the curriculum's long phase
    loop.py         the lockstep training loop (`python -m backend train`)
    emergence.py    probes scored inside training (few-shot, MQAR, pass key, multi-passage QA): emergence curves
    plan.py         one shared token stream file, and the step-count rendezvous of parallel runs
    paths.py        each model's training path, our fast SSM ops trusted only after an end-to-end check
    ssm_ops.py      autograd-capable Mamba / Mamba-2 training forwards built on kernels/
    run_all.py      one GPU call: train (in parallel), pack, evaluate (`python -m backend train-all`)
    speed.py        training-step speed per path and batch size (`python -m backend train-speed`)
    batched.py      a batched greedy generator for evaluation (no streaming)
    eval_suite.py   held-out evaluation of checkpoints (`python -m backend evaluate`)
    qa_errors.py    where open-book QA misses (`python -m backend qa-errors`)
    model_card.py   the bundled models' README cards (`python -m backend model-card`)
    pack.py         checkpoint folders <-> .tar.gz archives
"""
