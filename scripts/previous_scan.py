"""Write an earlier commit's Mamba-1 scan, with the launch rules it shipped with, as one file for
`kernel-bench --previous-scan` (gpu_run.sh scan15 passes .gpu_sdist/previous_selective_scan.py):

    python scripts/previous_scan.py c940c85 .gpu_sdist/previous_selective_scan.py

kernels/selective_scan.py of REV with REV's kernels/launch.py inlined in place of its import, so "previous" in
the kernel table is that commit's kernel *and* its block sizes / split rule, timed on the same inputs as ours.
Its other imports (from c4da23c on: kernels.scan_args, kernels.selective_scan_par, kernels.selective_scan_len) still
resolve to this tree's modules, so a REV after those changed times today's versions of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMPORT = "from kernels.launch import scan_config\n"


def previous_scan(rev: str) -> str:
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout

    scan, launch = show("kernels/selective_scan.py"), show("kernels/launch.py")
    if IMPORT not in scan:
        raise SystemExit(f"{rev}'s kernels/selective_scan.py does not import scan_config as expected; copy it by hand.")
    launch = launch.replace("from __future__ import annotations\n", "")
    body = scan.replace(IMPORT, f"# --- kernels/launch.py at {rev}, inlined ---\n{launch}\n# --- end of launch.py ---\n")
    return f"# kernels/selective_scan.py at {rev} with its launch.py (scripts/previous_scan.py)\n{body}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    out = Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(previous_scan(sys.argv[1]))
    print(f"wrote {out} ({sys.argv[1]})")
