"""Scale out on Ray: experiment, benchmark and evaluation shards across GPUs and machines (Ray is optional).

    cluster.py   connecting (one machine on 127.0.0.1, or a cluster's address), what a shard asks for (one
                 GPU where a GPU is used, else one CPU; retries), the control actor (stop flag, the shards'
                 counts, records in flight, who shares a device) and the driver's wait-and-merge loop
    evals.py     evaluation of trained checkpoints (`train-all --ray`): one shard per checkpoint folder

The shards of each job live beside the job: `backend/experiments/ray_runner.py` (experiments) and
`backend/bench/ray_sweep.py` (the benchmark). The driver builds the plan once, shards write JSONL records
(store.RecordWriter's format) and the driver alone writes the store. Nothing here imports ray at module level.
"""
