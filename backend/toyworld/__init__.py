"""The toy world: a seeded fictional world, its training corpus, and the held-out evaluation tasks.

Public API (evaluation split unless named otherwise; all pure Python, deterministic for a seed):
    TEMPLATES, FEWSHOT_TASKS, ANSWER_END
    fewshot_pool(task, n, seed)                 -> [{"text", "label"}]
    fewshot_prompt(examples, query)             -> str (TEMPLATES["fewshot_example"] * k + "fewshot_query")
    arithmetic_problems(n, steps, seed)         -> [{"question", "solution", "answer", "steps"}]
    passkey_documents(n, context_tokens, depth, seed, count_tokens=None)
                                                -> [{"context", "question", "answer", "depth", "length"}]
    qa_pairs(n, seed, open_book)                -> [{"context" (None when closed-book), "question", "answer",
                                                    "key" (the attribute asked for, e.g. "colour")}]
    rag_corpus(seed, n_entities)                -> {"documents": [{"doc_id","title","text"}],
                                                    "questions": [{"question","answer","doc_id"}]}
    recall_segments(n, n_pairs, seed)           -> [{"context", "question", "answer"}]
    heldout_documents(n, seed)                  -> [{"doc_id", "title", "text"}]
  The probes of the experiments' current task versions (backend/toyworld/probes.py, issue 13):
    fewshot_episodes(task, n, kmax, seed)       -> [{"query", "examples", "choices", "mapping"}], one label
                                                   mapping per episode (tasks FEWSHOT_PROBES)
    passkey_probe(n, context_tokens, depth, keys, seed, count_tokens=None)
                                                -> passkey rows + "keys", "distance", "distractors"
    recall_aligned(n, n_pairs, seed)            -> [{"context", "question", "answer", "position", "values"}]
    copy_sequences(n, n_words, seed)            -> [{"text", "answer", "words"}]
    TRAINED                                     what training shows of each skill (k, steps, tokens, pairs, words)
    example_prompts()                           -> [str] (Arena examples, about training-world entities)
    training_corpus(n_tokens_approx, seed, mixture="v1")
                                                -> iterator of training documents (train split) of a mixture
    training_documents(seed, mixture="v1")      -> endless document stream of a mixture
  Training mixtures (backend/toyworld/mixture.py, issue 14): "v1" (corpus.py, the bundled checkpoints'
  stream, byte-identical; TRAINED is its ranges) and "context" (adds multi-query recall, bursty few-shot over
  Zipfian single-token labels with a random mapping per episode, multi-passage QA):
    MIXTURES, TRAINED_BY_MIXTURE                {name: {kind: share}}, {name: TRAINED-like ranges}
    LABEL_POOL, TRAIN_LABELS, HELD_OUT_LABELS   few-shot label words (held-out: never a label in training)
    long_documents(seed, split="train")         -> endless long documents (1,500..8,000 tokens), long phase
    describe_mixture(mixture)                   -> {"mixture", "shares", "trained", ...} for a model card

Closed-book questions ask about the fixed training world (the only split whose facts the models saw), and
only about entities whose facts appear in the corpus as prose but never as question/answer lines.
"""

from __future__ import annotations

from . import probes as _p
from . import tasks as _t
from .corpus import TRAINED
from .mixture import (
    HELD_OUT_LABELS,
    LABEL_POOL,
    MIXTURES,
    TRAIN_LABELS,
    TRAINED_BY_MIXTURE,
    long_documents,
    training_corpus,
)
from .mixture import describe as describe_mixture
from .mixture import documents as training_documents
from .probes import COPY_WORDS, FEWSHOT_PROBES, NEW_LABELS, TRAINED_LABELS
from .tasks import ANSWER_END, FEWSHOT_TASKS, TEMPLATES, fewshot_prompt
from .world import core_world, split_of

EVAL = "eval"


def fewshot_pool(task: str, n: int, seed: int = 0) -> list[dict]:
    return _t.fewshot_examples(task, n, _t._rng(EVAL, f"fewshot:{task}", seed), EVAL)


def arithmetic_problems(n: int, steps: int, seed: int = 0) -> list[dict]:
    return _t.arithmetic(n, steps, _t._rng(EVAL, f"arith:{steps}", seed), EVAL)


def passkey_documents(n: int, context_tokens: int, depth: float, seed: int = 0, count_tokens=None) -> list[dict]:
    rng = _t._rng(EVAL, f"passkey:{context_tokens}:{depth}", seed)
    return _t.passkey(n, context_tokens, depth, rng, EVAL, count_tokens)


def qa_pairs(n: int, seed: int = 0, open_book: bool = True) -> list[dict]:
    return _t.qa(n, _t._rng(EVAL, f"qa:{open_book}", seed), EVAL, open_book)


def rag_corpus(seed: int = 0, n_entities: int = 50) -> dict:
    return _t.rag(n_entities, _t._rng(EVAL, "rag", seed), EVAL)


def recall_segments(n: int, n_pairs: int, seed: int = 0) -> list[dict]:
    return _t.recall(n, n_pairs, _t._rng(EVAL, f"recall:{n_pairs}", seed), EVAL)


def heldout_documents(n: int, seed: int = 0) -> list[dict]:
    return _t.documents(n, _t._rng(EVAL, "docs", seed), EVAL)


def fewshot_episodes(task: str, n: int, kmax: int, seed: int = 0) -> list[dict]:
    return _p.fewshot_episodes(task, n, kmax, _t._rng(EVAL, f"episodes:{task}:{kmax}", seed), EVAL)


def passkey_probe(n: int, context_tokens: int, depth: float, keys: int = 1, seed: int = 0,
                  count_tokens=None) -> list[dict]:
    rng = _t._rng(EVAL, f"passkey-probe:{context_tokens}:{depth}:{keys}", seed)
    return _p.passkey_probe(n, context_tokens, depth, keys, rng, EVAL, count_tokens)


def recall_aligned(n: int, n_pairs: int, seed: int = 0) -> list[dict]:
    return _p.recall_aligned(n, n_pairs, _t._rng(EVAL, f"recall-aligned:{n_pairs}", seed), EVAL)


def copy_sequences(n: int, n_words: int, seed: int = 0) -> list[dict]:
    return _p.copy_sequences(n, n_words, _t._rng(EVAL, f"copy:{n_words}", seed))


def example_prompts() -> list[str]:
    w = core_world()
    p, place, org = w.people[0], w.places[0], w.orgs[0]
    problem = _t.arithmetic(1, 2, _t._rng("train", "example", 0), "train")[0]
    return [
        TEMPLATES["tell"].format(name=p.name),
        TEMPLATES["tell"].format(name=place.name),
        TEMPLATES["tell"].format(name=org.name),
        TEMPLATES["qa_closed"].format(question=f"Where does {w.people[1].name} live?"),
        TEMPLATES["cot"].format(question=problem["question"]),
    ]


__all__ = ["TEMPLATES", "FEWSHOT_TASKS", "ANSWER_END", "fewshot_pool", "fewshot_prompt", "arithmetic_problems",
           "passkey_documents", "qa_pairs", "rag_corpus", "recall_segments", "heldout_documents",
           "example_prompts", "training_corpus", "training_documents", "core_world", "split_of", "TRAINED",
           "fewshot_episodes", "passkey_probe", "recall_aligned", "copy_sequences", "FEWSHOT_PROBES", "NEW_LABELS",
           "TRAINED_LABELS", "COPY_WORDS", "MIXTURES", "TRAINED_BY_MIXTURE", "LABEL_POOL", "TRAIN_LABELS",
           "HELD_OUT_LABELS", "long_documents", "describe_mixture"]
