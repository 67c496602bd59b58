"""Create ./.venv and install scrm into it (with its dev extras) when needed; stdlib only.

Shared by scripts/demo.py and scripts/test.py, so that a fresh clone needs nothing but python3 >= 3.11.
The install is redone when pyproject.toml changes (a hash is kept in .venv/.stamp-install).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv() -> Path:
    """Return the virtual environment's python, creating and installing it first if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an older python3
        sys.exit(f"scrm needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".stamp-install"
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing scrm and its dependencies (first run only) ...", flush=True)
        quiet = ["--quiet", "--disable-pip-version-check"]
        subprocess.run([python, "-m", "pip", "install", *quiet, "--upgrade", "pip"], check=True)
        subprocess.run([python, "-m", "pip", "install", *quiet, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
        stamp.write_text(digest)
    return python


def run(args: list[str | os.PathLike[str]]) -> int:
    return subprocess.run(args, cwd=ROOT).returncode
