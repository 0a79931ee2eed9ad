"""Whether the Hugging Face Hub can be reached, decided once per process.

HF_HUB_OFFLINE set means offline. Otherwise one TCP connection to the Hub's host (HF_ENDPOINT, default
huggingface.co) on port 443, bounded by PROBE_TIMEOUT_S in a daemon thread (a DNS lookup can ignore socket
timeouts). When the Hub cannot be reached, HF_HUB_OFFLINE=1 is set for the rest of the process, so nothing
later waits ~45 s on a connection that cannot succeed: a model that is not on disk fails at once with the
registry's sentence (download it elsewhere or add a local folder).

    offline() -> bool      (the first call decides; later calls are free)
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

from backend.models import registry

PROBE_TIMEOUT_S = 2.0
_decided: dict[str, bool] = {}
_lock = threading.Lock()


def _hub_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def _probe(host: str, timeout: float) -> bool:
    """True when a TCP connection to host:443 opens within `timeout` seconds (DNS included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=attempt, daemon=True, name="hub-probe")
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def offline(probe=None) -> bool:
    """Whether the Hugging Face Hub is out of reach, decided on the first call of the process."""
    with _lock:
        if "offline" not in _decided:
            off = registry.hf_offline() or not (probe or _probe)(_hub_host(), PROBE_TIMEOUT_S)
            if off:
                os.environ["HF_HUB_OFFLINE"] = "1"  # transformers / huggingface_hub read it when imported
            _decided["offline"] = off
        return _decided["offline"] or registry.hf_offline()


def reset() -> None:
    """Forget the decision (tests)."""
    with _lock:
        _decided.clear()
