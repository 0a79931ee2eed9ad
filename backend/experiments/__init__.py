"""Experiments: few-shot, long context, chain-of-thought and RAG, SSMs against transformers.

    config.py    ExperimentConfig (passed whole; stored with the run), sweep keys, quick/full profiles
    tasks.py     TaskSpec (tasks as data: template, few-shot selection, extraction, metric), Instance
    metrics.py   extraction rules (strict / flexible, as lm-eval's gsm8k_cot), exact match, token F1, Wilson
    datasets.py  user JSONL files (gsm8k, classification, passkey schemas) with per-line errors
    registry.py  the task registry and Plan (imports no task), the generic few-shot plan shape
    plans.py     config -> the exact instances every model sees (built-in tasks or user-data plans)
    toytasks.py  built-in tasks from the toy world's held-out generators and TEMPLATES
    rag.py       the RAG experiment: retrieved-context plans, saved plans, recall@k / F1 / faithfulness rows
    runner.py    run_experiment: records, resume, cancel, progress; parallel.py: --workers N
    jobs.py      a run in a background thread for the UI; views.py / rag_views.py: the data the pages plot
    summary.py   markdown tables of stored runs; results_doc.py: docs/results.md from results/

Nothing here imports torch or duckdb at module level: models come from a Generator, rows go to the store.
"""
