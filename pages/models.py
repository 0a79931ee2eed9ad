"""Models: the registry and each entry's availability, loaded models, load / unload, add a local folder,
and the training loss curves of the bundled models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.generation.compare import device_setting, error_sentence
from backend.models import registry
from backend.models.weights import param_count
from pages.components.charts import loss_lines
from pages.components.model_cards import bundled_models_section
from pages.components.resources import get_manager


def params_text(spec, loaded: dict) -> str:
    if spec.name in loaded:
        return f"{loaded[spec.name].n_params / 1e6:,.2f}M"
    if spec.source in ("bundled", "local"):
        n = param_count(spec.location)  # from the headers, no weights loaded
        if n:
            return f"{n / 1e6:,.2f}M"
        return "untrained placeholder" if spec.placeholder else "—"
    m = re.search(r"(\d+(?:\.\d+)?)([mb])\b", spec.name.lower())
    return f"≈{m.group(1)}{m.group(2).upper()} (from the name)" if m else "—"


def read_loss(path: Path) -> pd.DataFrame:
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a half-written last line must not hide the curve
    return pd.DataFrame([r for r in rows if isinstance(r, dict)])


def loss_long(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Long table (model, x, series, loss) from a loss.jsonl frame: every numeric column named *loss*."""
    x = next((c for c in ("step", "tokens", "iter", "epoch") if c in df.columns), None)
    ys = [c for c in df.columns if "loss" in str(c).lower() and pd.api.types.is_numeric_dtype(df[c])]
    if not ys:
        return pd.DataFrame()
    xs = df[x] if x else pd.Series(range(len(df)), index=df.index)
    split = df["split"].astype(str) + " " if "split" in df.columns else ""
    parts = [pd.DataFrame({"model": name, "x": xs, "series": split + y, "loss": df[y]}).dropna(subset=["loss"])
             for y in ys]
    out = pd.concat(parts, ignore_index=True)
    out.attrs["x"] = x or "record"
    return out


def flash(area: str, level: str, text: str) -> None:
    """Keep an action's outcome across the rerun that redraws the tables with the new state."""
    st.session_state[f"models_flash_{area}"] = (level, text)


def show_flash(area: str) -> None:
    if item := st.session_state.pop(f"models_flash_{area}", None):
        level, text = item
        (st.success if level == "success" else st.error)(text)


st.title("Models")
manager = get_manager()
specs = registry.list_specs()
loaded_infos = manager.loaded()
loaded = {i.name: i for i in loaded_infos}

rows = []
for s in specs:
    ok, sentence = registry.availability(s)
    rows.append({"name": s.name, "family": s.family, "params": params_text(s, loaded),
                 "available": "yes" if ok else "no", "availability": sentence, "paired with": s.paired_with or "",
                 "source": s.source, "dtype": s.dtype, "location": s.location})
st.subheader("Registry")
st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_registry")
unavailable = [r for r in rows if r["available"] == "no"]
if unavailable:
    with st.expander(f"Why {len(unavailable)} models are unavailable"):
        for r in unavailable:
            st.text(f"{r['name']}: {r['availability']}")

st.subheader("Loaded models")
if loaded_infos:
    st.dataframe(pd.DataFrame([{"name": i.name, "family": i.family, "device": i.device, "dtype": i.dtype,
                                "params": f"{i.n_params / 1e6:,.2f}M", "path": i.path,
                                "placeholder": "untrained placeholder" if i.placeholder else ""}
                               for i in loaded_infos]), hide_index=True, key="models_loaded")
else:
    st.text(f"No model is loaded yet. Models load on first use (device setting: {device_setting()}).")

c1, c2 = st.columns(2)
with c1:
    choice = st.selectbox("Model", [s.name for s in specs], key="models_choice")
    if st.button("Load", key="models_load"):
        with st.spinner(f"Loading {choice} ..."):
            try:
                info = manager.get(choice, device=device_setting()).info
                flash("load", "success", f"{choice} is loaded on {info.device} ({info.dtype}).")
            except Exception as e:
                flash("load", "error", error_sentence(e))
        st.rerun()  # redraw the tables above with the new state
with c2:
    names = sorted(loaded)
    target = st.selectbox("Loaded model", names, key="models_unload_choice", index=0 if names else None,
                          placeholder="nothing loaded")
    if st.button("Unload", key="models_unload", disabled=not names) and target:
        manager.unload(target)
        flash("load", "success", f"{target} was unloaded.")
        st.rerun()
show_flash("load")

st.subheader("Add a model from a local folder")
models_root = registry.models_root()
st.caption(f"Only folders inside {models_root} can be added here (set SSM_ARENA_MODELS_ROOT before starting the "
           "dashboard to choose another); from a terminal, `python -m backend models --add FOLDER` takes any folder.")
with st.form("models_add", clear_on_submit=False):
    folder = st.text_input("Folder inside the models folder (what save_pretrained() wrote: config.json, weights, "
                           "tokenizer)", key="models_add_folder")
    name = st.text_input("Name (optional; default: the folder's name)", key="models_add_name")
    if st.form_submit_button("Add model"):
        if not folder.strip():
            flash("add", "error", "Type the path of a model folder first.")
        else:
            try:
                spec = registry.add_local_model(folder.strip(), name.strip() or None, root=models_root)
                flash("add", "success", f"Added '{spec.name}' ({spec.family}). It is now in the registry and the Arena.")
            except Exception as e:
                flash("add", "error", error_sentence(e))
        st.rerun()
show_flash("add")

st.subheader("Training loss of the bundled models")
curves = []
for s in specs:
    path = Path(s.location) / "loss.jsonl"
    if s.source == "bundled" and path.is_file():
        long = loss_long(s.name, read_loss(path))
        if not long.empty:
            curves.append(long)
if curves:
    df = pd.concat(curves, ignore_index=True)
    st.plotly_chart(loss_lines(df, curves[0].attrs.get("x", "step")), key="models_loss")
else:
    st.text("No loss curves yet: trained bundled models write assets/models/<name>/loss.jsonl.")

bundled_models_section(specs)
