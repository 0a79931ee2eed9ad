"""Decoding-settings widgets shared by the Arena and RAG pages (the same settings for every model)."""

from __future__ import annotations

import streamlit as st

from backend.generation.interface import GenSettings

SETTING_DEFAULTS = {"max_new": 64, "decoding": "greedy", "seed": 0, "temp": 1.0, "top_p": 1.0}


def settings_widgets(key: str) -> GenSettings:
    """Decoding settings shared by every column (same settings for all models: fair comparison).

    Widget keys are `<key>_max_new`, `<key>_decoding`, ... so callbacks can rebuild the settings with
    `settings_from_state(key)`."""
    d, keep = SETTING_DEFAULTS, {"persist_state": "session"}  # kept across page switches
    c1, c2, c3 = st.columns(3)
    c1.number_input("Max new tokens", 1, 4096, d["max_new"], key=f"{key}_max_new", **keep)
    sampling = c2.radio("Decoding", ["greedy", "sampling"], horizontal=True, key=f"{key}_decoding", **keep)
    c3.number_input("Seed", 0, 2**31 - 1, d["seed"], key=f"{key}_seed", **keep)
    c4, c5 = st.columns(2)
    c4.slider("Temperature", 0.05, 2.0, d["temp"], 0.05, key=f"{key}_temp", disabled=sampling == "greedy", **keep)
    c5.slider("Top-p", 0.05, 1.0, d["top_p"], 0.05, key=f"{key}_top_p", disabled=sampling == "greedy", **keep)
    return settings_from_state(key)


def settings_from_state(key: str) -> GenSettings:
    def get(name):
        return st.session_state.get(f"{key}_{name}", SETTING_DEFAULTS[name])

    return GenSettings(max_new_tokens=int(get("max_new")), do_sample=get("decoding") == "sampling",
                       temperature=float(get("temp")), top_p=float(get("top_p")), seed=int(get("seed")))
