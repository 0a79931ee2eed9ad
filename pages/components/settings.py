"""Decoding-settings widgets shared by the Arena, A/B and RAG pages (the same settings for every model),
and the Arena's run options: stop at the end of the line, warm-up runs and timed repeats."""

from __future__ import annotations

import streamlit as st

from backend.generation.interface import GenSettings

SETTING_DEFAULTS = {"max_new": 64, "decoding": "greedy", "seed": 0, "temp": 1.0, "top_p": 1.0,
                    "line_stop": False, "warmup": 0, "repeats": 1}


def settings_widgets(key: str, line_stop: bool = True) -> GenSettings:
    """Decoding settings shared by every column (same settings for all models: fair comparison).

    Widget keys are `<key>_max_new`, `<key>_decoding`, ... so callbacks can rebuild the settings with
    `settings_from_state(key)`."""
    d, keep = SETTING_DEFAULTS, {"persist_state": "session"}  # kept across page switches
    c1, c2, c3 = st.columns(3)
    c1.number_input("Max new tokens", 1, 4096, key=f"{key}_max_new", **_initial(key, "max_new"), **keep)
    sampling = c2.radio("Decoding", ["greedy", "sampling"], horizontal=True, key=f"{key}_decoding", **keep)
    c3.number_input("Seed", 0, 2**31 - 1, d["seed"], key=f"{key}_seed", **keep)
    c4, c5 = st.columns(2)
    c4.slider("Temperature", 0.05, 2.0, d["temp"], 0.05, key=f"{key}_temp", disabled=sampling == "greedy", **keep)
    c5.slider("Top-p", 0.05, 1.0, d["top_p"], 0.05, key=f"{key}_top_p", disabled=sampling == "greedy", **keep)
    if line_stop:
        st.toggle("Stop at the end of the line (question answering)", key=f"{key}_line_stop", **_initial(key, "line_stop"),
                  help="The bundled models answer questions on one line: stop each model at its first line "
                       "break after some text.", **keep)
    return settings_from_state(key)


def _initial(key: str, name: str) -> dict:
    """The widget's default, unless an example already put a value into session state (Streamlit warns when a
    widget gets both)."""
    return {} if f"{key}_{name}" in st.session_state else {"value": SETTING_DEFAULTS[name]}


def timing_widgets(key: str) -> None:
    """Warm-up runs and timed repeats (Arena): medians with their spread instead of one cold sample."""
    keep = {"persist_state": "session"}
    c1, c2 = st.columns(2)
    c1.number_input("Warm-up runs (untimed, same prompt)", 0, 5, SETTING_DEFAULTS["warmup"], key=f"{key}_warmup",
                    help="Run the prompt this many times before timing it: the first run of a prompt length "
                         "pays one-off costs (memory growth, kernel choice).", **keep)
    c2.number_input("Timed runs (median and spread shown)", 1, 20, SETTING_DEFAULTS["repeats"], key=f"{key}_repeats",
                    help="The first timed run streams; the others run unseen. Metrics show the median with the "
                         "min-max range.", **keep)


def settings_from_state(key: str) -> GenSettings:
    def get(name):
        return st.session_state.get(f"{key}_{name}", SETTING_DEFAULTS[name])

    return GenSettings(max_new_tokens=int(get("max_new")), do_sample=get("decoding") == "sampling",
                       temperature=float(get("temp")), top_p=float(get("top_p")), seed=int(get("seed")))


def run_options_from_state(key: str) -> dict:
    """CompareJob options from the widgets: stop_at_line, warmup, repeats."""
    def get(name):
        return st.session_state.get(f"{key}_{name}", SETTING_DEFAULTS[name])

    return {"stop_at_line": bool(get("line_stop")), "warmup": int(get("warmup")), "repeats": int(get("repeats"))}


def apply_example(example, key: str = "arena") -> None:
    """Fill a page's prompt, reference answer and settings from a backend.arena.examples.Example (the start
    page's "Try it" and the Arena's example box; call it from a callback, before the widgets are drawn)."""
    st.session_state[f"{key}_prompt"] = example.prompt
    st.session_state[f"{key}_reference"] = example.reference or ""
    st.session_state[f"{key}_max_new"] = example.max_new_tokens
    st.session_state[f"{key}_line_stop"] = example.stop_at_line
