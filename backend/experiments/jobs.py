"""An experiment running in a background thread, for the UI (no Streamlit here).

Streamlit reruns the page script on every click, so the page keeps the job in `st.session_state`: the
worker thread only updates plain fields (progress, status), the script thread reads them and draws, and
Cancel sets the job's event, which the runner polls between tokens and instances (`should_stop`).
A cancelled job keeps every finished instance (run status "cancelled") and can be resumed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from backend.experiments.config import ExperimentConfig
from backend.experiments.runner import RunOutcome, run_experiment


class ExperimentJob:
    def __init__(self, config: ExperimentConfig, get_generator: Callable, store,
                 resume_run_id: str | None = None) -> None:
        self.config, self.get_generator, self.store = config, get_generator, store
        self.resume_run_id = resume_run_id
        self.stop = threading.Event()
        self.done, self.total, self.message = 0, 0, "loading models"
        self.status = "running"  # running | completed | cancelled | failed
        self.outcome: RunOutcome | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._rate_from: tuple[float, int] | None = None  # (time, done) of the first progress report
        self._thread = threading.Thread(target=self._work, daemon=True, name=f"experiment-{config.experiment}")

    def start(self) -> ExperimentJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def run_id(self) -> str | None:
        return self.outcome.run_id if self.outcome else self.resume_run_id

    def _progress(self, done: int, total: int, message: str) -> None:
        if self._rate_from is None:  # the first report (models loaded, resumed instances counted): the rate's origin
            self._rate_from = (time.time(), done)
        self.done, self.total, self.message = done, total, message

    def rate(self) -> float | None:
        """Instances per second since the first progress report (None until one more instance finished)."""
        if self._rate_from is None:
            return None
        t0, d0 = self._rate_from
        elapsed = (self.finished_at or time.time()) - t0
        return (self.done - d0) / elapsed if self.done > d0 and elapsed > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left at the current rate (None while there is no rate)."""
        r = self.rate()
        return (self.total - self.done) / r if r and self.total else None

    def _work(self) -> None:
        try:
            self.outcome = run_experiment(self.config, self.get_generator, self.store, progress=self._progress,
                                          should_stop=self.stop.is_set, resume_run_id=self.resume_run_id)
            self.status = self.outcome.status
        except Exception as e:  # shown on the page as a sentence; the run is marked failed in the store
            self.status, self.error = "failed", str(e) or type(e).__name__
        finally:
            self.finished_at = time.time()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
