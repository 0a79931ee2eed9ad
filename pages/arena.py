"""Arena: one prompt, several models side by side, streaming with live prefill / decode / memory metrics."""

from __future__ import annotations

import streamlit as st

from backend.generation.compare import CompareJob, Slot, error_sentence
from backend.models import registry
from pages.components.charts import comparison_chart
from pages.components.resources import get_manager, get_store
from pages.components.settings import settings_from_state, settings_widgets
from pages.components.streaming import render_job

JOB = "arena_job"
ERROR = "arena_error"
BUILTIN_EXAMPLES = [
    "Once upon a time, in a small village by the river,",
    "The capital of France is",
    "Q: What is 12 + 7?\nA:",
    "List three facts about the moon:",
]


def example_prompts() -> list[str]:
    try:
        from backend.toyworld import example_prompts as toy_examples

        return list(toy_examples())[:12] or BUILTIN_EXAMPLES
    except Exception:  # the toy world is optional: fall back to generic prompts
        return BUILTIN_EXAMPLES


def use_example() -> None:
    choice = st.session_state.get("arena_example")
    if choice:
        st.session_state["arena_prompt"] = choice


def stop_job() -> None:
    job = st.session_state.get(JOB)
    if job is not None:
        job.stop.set()


def start_job() -> None:
    """Generate's callback: runs before the script body, so this run already draws the new job's columns
    and an enabled Stop button."""
    prompt = st.session_state.get("arena_prompt") or ""
    models = st.session_state.get("arena_models") or []
    settings = settings_from_state("arena")
    if not prompt.strip():
        st.session_state[ERROR] = "The prompt is empty. Type some text (or pick an example) and press Generate again."
    elif not models:
        st.session_state[ERROR] = "No model is selected. Pick at least one model above."
    else:
        try:
            settings.validate()
        except ValueError as e:
            st.session_state[ERROR] = error_sentence(e)
            return
        slots = [Slot(m, m, prompt) for m in models]
        parallel = bool(st.session_state.get("arena_parallel", False))
        st.session_state[JOB] = CompareJob(slots, settings, get_manager(), parallel=parallel,
                                           on_finish=recorder(settings)).start()


def recorder(settings):
    """Saves the finished columns (run kind "generate"); runs in a worker thread, so the store is opened here,
    in the script thread. Store problems become a warning: the generated text stays on screen."""
    try:
        store, problem = get_store(), None
    except Exception as e:
        store, problem = None, error_sentence(e)

    def record(results):
        from backend.generation.recording import record_generation

        if store is None:
            return [("warning", f"This generation was not saved to the store: {problem}")]
        try:
            run_id = record_generation(store, results, settings, source="ui")
        except Exception as e:
            return [("warning", f"This generation was not saved to the store: {error_sentence(e)}")]
        return [("info", f"Saved as run {run_id} (see the History page).")]

    return record


st.title("Arena")
st.caption("The same prompt and decoding settings for every model; each model streams into its own column.")

specs = registry.list_specs()
names = [s.name for s in specs]
default = [n for n in registry.default_pair() if n in names]

st.selectbox("Example prompts", example_prompts(), index=None, key="arena_example", on_change=use_example,
             placeholder="Pick an example to fill the prompt")
# persist_state="session": the prompt, models and settings survive a visit to another page.
prompt = st.text_area("Prompt", key="arena_prompt", height=120, max_chars=200_000,
                      placeholder="Type a prompt, then press Generate.", persist_state="session")
models = st.multiselect("Models", names, default=default, key="arena_models", persist_state="session",
                        help="Default: one SSM and one transformer of matched size.")
with st.expander("Settings", expanded=False):
    settings_widgets("arena")
    st.toggle("Run the models at the same time", value=False, key="arena_parallel", persist_state="session",
              help="Off (default): one after the other, so their timings do not share the CPU/GPU.")

job = st.session_state.get(JOB)
busy = job is not None and job.running
c1, c2, _ = st.columns([1, 1, 6])
c1.button("Generate", type="primary", key="arena_generate", on_click=start_job, disabled=busy)
# Stop stays enabled: Streamlit drops clicks on widgets that were disabled in the last run, and a run that
# started before the job must still be able to stop it.
c2.button("Stop", key="arena_stop", on_click=stop_job, help="Stop every model; partial text is kept.")
if error := st.session_state.pop(ERROR, None):
    st.error(error)

if job is not None:
    render_job(job)
    results = job.results()
    fig = comparison_chart(results)
    if fig is not None:
        st.subheader("Comparison")
        st.plotly_chart(fig, key="arena_chart")
    if busy:
        st.rerun()  # the job ended during this run: redraw so Generate is enabled again
