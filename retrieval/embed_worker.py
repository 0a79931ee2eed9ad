"""The embedder process started by embed_process.py: loads the model, then embeds one request after another.

Protocol in embed_process.py. Its thread count comes from OMP_NUM_THREADS / MKL_NUM_THREADS, which the parent
sets before starting it (torch reads them when it loads). Exits at EOF on stdin.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")  # the replies
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into a reply
    sys.stdout = sys.stderr
    try:
        from retrieval.embed import Embedder

        device = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "auto" else None
        emb = Embedder(device)
    except Exception as e:  # noqa: BLE001 - the parent shows the sentence
        out.write(json.dumps({"ok": False, "message": f"The embedding model could not be loaded ({e})."}).encode()
                  + b"\n")
        out.flush()
        return
    out.write(json.dumps({"ok": True, "device": emb.device, "dtype": emb.dtype}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            texts = json.loads(line)["texts"]
            vectors = emb.encode([str(t) for t in texts])
        except Exception as e:  # noqa: BLE001 - a bad request gets a sentence, the process goes on
            out.write(json.dumps({"error": f"The texts could not be embedded ({type(e).__name__}: {e})."}).encode()
                      + b"\n")
        else:
            out.write(json.dumps({"n": len(texts)}).encode() + b"\n")
            out.write(vectors.astype("<f4").tobytes())
        out.flush()
