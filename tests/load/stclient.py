"""A browser-less Streamlit client: the protocol the web frontend speaks, enough to open a page, set widgets and
press buttons, and read what the page shows. Used by the load test (8 of these at once against one server) and
by the fault suite's check of the served app's settings.

Protocol (Streamlit 1.67, Starlette server): GET /_stcore/health sets the `_streamlit_xsrf` cookie; the WebSocket
`/_stcore/stream` is opened with that cookie, an Origin header and the subprotocols "streamlit, <xsrf token>";
the server answers with ForwardMsgs (new_session carries the session id; deltas carry elements, widgets carry
their ids; script_finished ends a run). A rerun is a BackMsg `rerun_script` with the page name and the state
of every widget that is not at its default; a button press is a widget state with trigger_value.

Why hand-written: AppTest runs a page in the test's own process, not against a served app, and a browser per
client would need 8 Chromium processes on a 2-core machine; no maintained library speaks this protocol.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import time
import urllib.request
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

XSRF_COOKIE = "_streamlit_xsrf"
_FINISHED_EARLY_FOR_RERUN = 2  # ScriptFinishedStatus
_WIDGETS = ("text_input", "text_area", "button", "selectbox", "multiselect", "slider", "checkbox", "number_input",
            "radio", "toggle", "form_submit_button", "file_uploader")


@dataclass
class Page:
    """What one script run showed: widget ids by user key, and every text value of the elements."""

    widgets: dict[str, str] = field(default_factory=dict)  # user key -> widget id
    texts: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)  # st.exception elements and st.error alerts
    finished: bool = False

    def has(self, needle: str) -> bool:
        return any(needle in t for t in self.texts)


def _element_texts(element) -> tuple[str | None, list[str]]:
    """(widget user key or None, texts) of one Element proto."""
    kind = element.WhichOneof("type")
    if kind is None:
        return None, []
    body = getattr(element, kind)
    if kind == "exception":
        return None, [f"EXCEPTION {body.type}: {body.message}"]
    if kind == "alert" and body.format == Alert.ERROR:
        return None, [f"ERROR {body.body}"]
    texts = [getattr(body, name) for name in ("body", "label", "text", "value") if
             isinstance(getattr(body, name, None), str) and getattr(body, name)]
    wid = getattr(body, "id", "") if kind in _WIDGETS else ""
    parts = wid.split("-", 2) if wid.startswith("$$ID-") else []  # "$$ID-<hash>-<user key>"
    key = parts[2] if len(parts) == 3 and parts[2] else None
    return key, [*texts, *(["WIDGET " + wid] if wid else [])]


class Client:
    """One session of a served app (`url` like http://127.0.0.1:8501)."""

    def __init__(self, url: str, timeout_s: float = 60.0):
        self.url = url.rstrip("/")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(self.url + "/_stcore/health", timeout=timeout_s) as r:  # sets the XSRF cookie
            r.read()
        self.xsrf = next(c.value for c in jar if c.name == XSRF_COOKIE)
        ws_url = "ws" + self.url[len("http"):] + "/_stcore/stream"
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(ws_url, subprotocols=["streamlit", self.xsrf], origin=self.url,
                          additional_headers={"Cookie": f"{XSRF_COOKIE}={self.xsrf}"}, open_timeout=timeout_s,
                          max_size=2**28))
        self.session_id: str | None = None
        self.widgets: dict[str, str] = {}  # user key -> widget id, from every run seen so far

    def close(self) -> None:
        self._stack.close()

    def run(self, page: str, values: dict | None = None, click: str | None = None,
            timeout_s: float = 120.0) -> Page:
        """Rerun `page` with widget `values` (user key -> value) and optionally press the button `click`; returns
        what the run showed once its script_finished arrived (reruns the page asks for itself are followed).
        Value types follow the widgets' wire format: str for text, float for number_input (double_value), int
        for int sliders, bool for checkboxes, list[str] for multiselect (option strings). Widgets left out read
        as unset in callbacks (the web frontend sends every widget; and a page's widget values are dropped
        once another page ran), so give every value a callback reads."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_name = page
        for key, value in (values or {}).items():
            ws = state.widget_states.widgets.add()
            ws.id = self.widgets[key]
            if isinstance(value, bool):
                ws.bool_value = value
            elif isinstance(value, int):
                ws.int_value = value
            elif isinstance(value, float):
                ws.double_value = value
            elif isinstance(value, list):
                ws.string_array_value.data.extend(value)
            else:
                ws.string_value = value
        if click:
            ws = state.widget_states.widgets.add()
            ws.id = self.widgets[click]
            ws.trigger_value = True
        self.ws.send(msg.SerializeToString())
        return self.read_run(timeout_s)

    def read_run(self, timeout_s: float) -> Page:
        page = Page()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                raw = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.session_id = fwd.new_session.initialize.session_id
                page = Page()  # a new run started: what counts is its output
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                key, texts = _element_texts(fwd.delta.new_element)
                if key:
                    page.widgets[key] = texts[-1][len("WIDGET "):]
                    self.widgets[key] = page.widgets[key]
                page.texts += texts
                page.exceptions += [t for t in texts if t.startswith(("EXCEPTION", "ERROR"))]
            elif kind == "script_finished":
                if fwd.script_finished == _FINISHED_EARLY_FOR_RERUN:  # the page reran itself: follow it
                    page = Page()
                    continue
                page.finished = True
                return page
        return page
