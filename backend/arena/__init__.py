"""The Arena's helpers without Streamlit: what a first visit needs and the blind A/B mode.

    examples.py   prompts in the formats the bundled models were trained on, with references where the toy
                  world has one, and right / wrong marking with the experiments' extraction rules
    choices.py    which registry models can be offered on this machine (and why not), the network decided
                  once per process, so nothing waits on a Hub that cannot be reached
    explain.py    one or two sentences on the kernel / attention path that ran, and per-model memory
    evaluation.py the bundled models' held-out evaluation (the committed records of the checkpoints on disk)
                  as a compact leaderboard with 95% intervals, and their model cards
    ab.py         blind A/B pairs (one SSM, one transformer, order randomised) and recording a vote
    ratings.py    Bradley-Terry scores with bootstrap intervals from the stored votes (by model, by family)
"""
