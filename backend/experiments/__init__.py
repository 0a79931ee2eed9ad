"""Experiments: few-shot, long context, chain-of-thought and RAG, SSMs against transformers.

    config.py    ExperimentConfig (passed whole; stored with the run), sweep keys, quick/full profiles
    tasks.py     TaskSpec (tasks as data: template, few-shot selection, extraction, metric), Instance
    metrics.py   extraction rules (strict / flexible, as lm-eval's gsm8k_cot), exact match, token F1, Wilson
    datasets.py  user JSONL files (gsm8k, classification, passkey schemas) with per-line errors
    plans.py     config -> the exact instances every model sees; user-data plans; task registry
    toytasks.py  built-in tasks from the toy world's held-out generators and TEMPLATES (rag: backend.rag.rag_plan)
    runner.py    run_experiment: records, resume, cancel, progress; parallel.py: --workers N
    jobs.py      a run in a background thread for the UI; views.py: plot data (the Streamlit page parts are pages/expkit.py)
    rag_views.py the RAG experiment's tables and figures (EM / F1 vs k, closed vs open book, recall, faithfulness)

Nothing here imports torch or duckdb at module level: models come from a Generator, rows go to the store.
"""
