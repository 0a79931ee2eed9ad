"""Arena: one prompt, several models side by side, streaming with live prefill / decode / memory metrics."""

from __future__ import annotations

import shlex

import streamlit as st

from backend.arena.choices import default_selection, model_choices
from backend.arena.examples import examples, find
from backend.generation.compare import CompareJob, Slot, error_sentence
from pages.components.charts import comparison_chart
from pages.components.inside import arena_buttons
from pages.components.resources import get_manager, get_store
from pages.components.settings import (
    apply_example,
    run_options_from_state,
    settings_from_state,
    settings_widgets,
    timing_widgets,
)
from pages.components.streaming import chart_inputs, render_job

JOB = "arena_job"
ERROR = "arena_error"
REFERENCE = "arena_reference"  # the expected answer (examples fill it; the user may type one)
JOB_REFERENCE = "arena_job_reference"  # (reference, rule) of the job on screen


def use_example() -> None:
    title = st.session_state.get("arena_example")
    example = next((e for e in examples() if e.title == title), None)
    if example is not None:
        apply_example(example, "arena")


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
        options = run_options_from_state("arena")
        job = CompareJob(slots, settings, get_manager(), parallel=parallel, **options)
        job.on_finish = recorder(settings, job, options["warmup"])
        reference = (st.session_state.get(REFERENCE) or "").strip()  # the job's answers are marked against it
        example = find(prompt)  # an example's own extraction rule (e.g. "The answer is N."), else the first line
        st.session_state[JOB_REFERENCE] = (reference, example.rule if example else "first_line") if reference else None
        st.session_state[JOB] = job.start()


def recorder(settings, job: CompareJob, warmup: int):
    """Saves the finished columns (run kind "generate"), failed models included; runs in a worker thread, so
    the store is opened here, in the script thread. Store problems become a warning: the text stays."""
    try:
        store, problem = get_store(), None
    except Exception as e:
        store, problem = None, error_sentence(e)

    def record(results):
        from backend.generation.recording import record_generation

        if store is None:
            return [("warning", f"This generation was not saved to the store: {problem}")]
        try:
            run_id = record_generation(store, results, settings, source="ui", failures=job.failures,
                                       runs=job.runs_of_results(), warmup=warmup)
        except Exception as e:
            return [("warning", f"This generation was not saved to the store: {error_sentence(e)}")]
        failed = f" {len(job.failures)} model(s) failed; the run is marked failed." if job.failures else ""
        return [("info", f"Saved as run {run_id} (see the History page).{failed}")]

    return record


def cli_command(prompt: str, models: list[str]) -> str:
    s = settings_from_state("arena")
    parts = ["python -m backend generate", "--models", shlex.quote(",".join(models) or "toy-mamba,toy-transformer"),
             "--prompt", shlex.quote(prompt or "..."), "--max-new-tokens", str(s.max_new_tokens)]
    if s.do_sample:
        parts += ["--sample", "--temperature", f"{s.temperature:g}", "--top-p", f"{s.top_p:g}", "--seed", str(s.seed)]
    return " ".join(parts)


st.title("Arena")
st.caption("The same prompt and decoding settings for every model; each model streams into its own column. "
           "The bundled toy models only know their fictional world and its prompt formats: start from an example "
           "(or the Start page).")

choices = model_choices()
examples_by_title = {e.title: e for e in examples()}
st.selectbox("Example prompts (formats the bundled models were trained on)", list(examples_by_title), index=None,
             key="arena_example", on_change=use_example, placeholder="Pick an example to fill the prompt")
# persist_state="session": the prompt, models and settings survive a visit to another page.
prompt = st.text_area("Prompt", key="arena_prompt", height=120, max_chars=200_000,
                      placeholder="Type a prompt, then press Generate.", persist_state="session")
c1, c2 = st.columns([3, 2])
with c1:
    models = st.multiselect("Models", choices.names, default=default_selection(choices), key="arena_models",
                            persist_state="session", help="Default: one SSM and one transformer of matched size. "
                            "Only models that can load on this machine are listed.")
with c2:
    st.text_input("Reference answer (optional)", key=REFERENCE, persist_state="session",
                  help="When set, each answer is marked right or wrong (first line, exact match after "
                       "normalisation). The examples fill it in.")
if choices.unavailable:
    with st.expander(f"{len(choices.unavailable)} registry models are not offered here (why)"):
        for spec, why in choices.unavailable:
            st.text(f"{spec.name}: {why}")
example = find(prompt or "")
if example is not None:
    st.caption(f"Example: {example.note}" + ("" if example.reference is None else
                                              f" Reference answer: {example.reference!r}."))
with st.expander("Settings", expanded=False):
    settings_widgets("arena")
    timing_widgets("arena")
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
    render_job(job, reference=st.session_state.get(JOB_REFERENCE))
    arena_buttons(job)  # "Inside view" under each finished column (pages/inside_view.py)
    fig = comparison_chart(*chart_inputs(job))
    if fig is not None:
        st.subheader("Comparison")
        st.caption("Memory: this model's weights + cache. The process figure in each column is the whole app.")
        st.plotly_chart(fig, key="arena_chart")
    if busy:
        st.rerun()  # the job ended during this run: redraw so Generate is enabled again

with st.expander("Equivalent command (runs the same comparison from a terminal and records it)"):
    st.code(cli_command(prompt or "", models), language="bash", wrap_lines=True)
