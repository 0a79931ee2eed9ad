"""Blind A/B: one SSM and one transformer answer the same prompt in anonymous columns A and B (which is which
is drawn at random); vote, then see who was who. Votes are stored with the prompt and both outputs, and the
leaderboard ranks models and families by Bradley-Terry scores with bootstrap intervals."""

from __future__ import annotations

import streamlit as st

from backend.arena.ab import VOTE_LABELS, NoPairError, draw_pair, record_vote, votes_frame
from backend.arena.choices import model_choices
from backend.arena.examples import examples
from backend.arena.ratings import bt_scores
from backend.generation.compare import CompareJob, Slot, error_sentence
from pages.components.charts import rating_chart
from pages.components.fmt import export_buttons, exportable
from pages.components.resources import get_manager, get_store, store_or_stop
from pages.components.settings import apply_example, settings_from_state, settings_widgets
from pages.components.streaming import render_job

STATE = "ab_state"
ERROR = "ab_error"


def use_example() -> None:
    ex = next((e for e in examples() if e.title == st.session_state.get("ab_example")), None)
    if ex is not None:
        apply_example(ex, "ab")


def new_pair() -> None:
    """Draw one SSM and one transformer in random order and start both (A first, then B)."""
    prompt = st.session_state.get("ab_prompt") or ""
    settings = settings_from_state("ab")
    if not prompt.strip():
        st.session_state[ERROR] = "The prompt is empty. Type some text (or pick an example) and press New pair."
        return
    try:
        settings.validate()
        pair = draw_pair(model_choices().offered)
    except (ValueError, NoPairError) as e:
        st.session_state[ERROR] = error_sentence(e)
        return
    slots = [Slot("A", pair.model_a, prompt), Slot("B", pair.model_b, prompt)]
    job = CompareJob(slots, settings, get_manager(), stop_at_line=bool(st.session_state.get("ab_line_stop")))
    st.session_state[STATE] = {"pair": pair, "job": job.start(), "prompt": prompt, "settings": settings,
                               "vote": None, "vote_id": None}


def cast_vote(vote: str) -> None:
    state = st.session_state.get(STATE)
    if not state or state["vote"] or state["job"].running:
        return
    job = state["job"]
    outputs = {s.label: s.text for s in job.slots}
    metrics = {s.label: s.result.metrics.to_dict() for s in job.slots if s.result is not None}
    try:
        state["vote_id"] = record_vote(get_store(), state["pair"], state["prompt"], outputs, vote,
                                       state["settings"], metrics)
        state["vote"] = vote
    except Exception as e:
        st.session_state[ERROR] = f"The vote was not saved: {error_sentence(e)}"


@st.cache_data(show_spinner="Fitting Bradley-Terry scores with bootstrap intervals ...")
def _scores(votes, by: str):
    return bt_scores(votes, by=by)


st.title("Blind A/B")
st.caption("Two anonymous columns: one model with state space layers (Mamba, Mamba-2 or the Mamba-2/attention "
           "hybrid) and one transformer, in random order. Read both, vote, then see which was which. Votes go to the "
           "results store; the leaderboard below ranks them. The bundled hybrid learnt from another recipe than the "
           "bundled trio (its model card), so its score compares a recipe as well as an architecture.")
store = store_or_stop()

st.selectbox("Example prompts (formats the bundled models were trained on)", [e.title for e in examples()],
             index=None, key="ab_example", on_change=use_example, placeholder="Pick an example to fill the prompt")
st.text_area("Prompt", key="ab_prompt", height=110, persist_state="session",
             placeholder="Type a prompt, then press New blind pair.")
with st.expander("Decoding settings (the same for both sides)"):
    settings_widgets("ab")

state = st.session_state.get(STATE)
job = state["job"] if state else None
busy = job is not None and job.running
st.button("New blind pair", type="primary", key="ab_new", on_click=new_pair, disabled=busy)
if error := st.session_state.pop(ERROR, None):
    st.error(error)

if state:
    pair, voted = state["pair"], state["vote"]
    failed = any(s.status in ("error", "skipped") for s in job.slots) if not busy else False
    render_job(job, anonymous=not (voted or failed))
    if busy:
        st.rerun()
    if failed:
        st.warning(f"One side could not answer, so this pair cannot be voted on. A was {pair.model_a} "
                   f"({pair.family_a}), B was {pair.model_b} ({pair.family_b}).")
    elif not voted:
        st.subheader("Which answer is better?")
        cols = st.columns(4)
        for col, (vote, label) in zip(cols, VOTE_LABELS.items(), strict=True):
            col.button(label, key=f"ab_vote_{vote}", on_click=cast_vote, args=(vote,), width="stretch")
    else:
        st.success(f"Your vote: {VOTE_LABELS[voted]}. A was {pair.model_a} ({pair.family_a}), "
                   f"B was {pair.model_b} ({pair.family_b}). Saved as vote {state['vote_id'][:8]}.")

st.header("Leaderboard")
votes = votes_frame(store)
if votes.empty:
    st.info("No votes yet. Generate a blind pair above and vote; every vote is stored with its prompt and outputs.")
else:
    st.caption(f"{len(votes)} vote{'' if len(votes) == 1 else 's'}. Bradley-Terry scores on the Elo scale (1000 = the average player; +100 ≈ "
               "64% expected wins against it), 95% bootstrap intervals over votes. Ties and 'both bad' count as "
               "half a win each.")
    basis = votes[["model_a", "model_b", "family_a", "family_b", "vote"]].astype(str)
    t1, t2 = st.tabs(["By model", "By family"])
    for tab, by in ((t1, "model"), (t2, "family")):
        with tab:
            scores = _scores(basis, by)
            st.plotly_chart(rating_chart(scores, f"Bradley-Terry score by {by}"), key=f"ab_chart_{by}")
            st.dataframe(scores.round({"score": 0, "ci_low": 0, "ci_high": 0, "win_rate": 3}), hide_index=True,
                         key=f"ab_scores_{by}")
    export_buttons(votes, "votes", "ab", what="votes")
    with st.expander("Stored votes (prompt and both outputs)"):
        st.dataframe(exportable(votes), hide_index=True, key="ab_votes_table")
st.caption("Equivalent commands: `python -m backend ab --leaderboard` (scores by model and family) and "
           "`python -m backend ab --export votes.csv`.")
