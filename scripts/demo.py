"""The main job end to end on the embedded default: `python3 scripts/demo.py [scrm demo options]`."""

from __future__ import annotations

import sys

from _venv import BIN, ensure_venv, run

if __name__ == "__main__":
    ensure_venv()
    sys.exit(run([BIN / "scrm", "demo", *sys.argv[1:]]))
