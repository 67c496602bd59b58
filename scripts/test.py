"""The whole test suite: lint (ruff), types (mypy), tests (pytest). `python3 scripts/test.py [pytest args]`.

PostgreSQL tests use SCRM_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test) and
are skipped with a reason when it does not answer, unless SCRM_REQUIRE_POSTGRES=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import sys

from _venv import BIN, ensure_venv, run

if __name__ == "__main__":
    python = ensure_venv()
    steps: list[tuple[str, list[object]]] = [
        ("ruff", [BIN / "ruff", "check", "."]),
        ("mypy", [BIN / "mypy"]),
        ("pytest", [python, "-m", "pytest", *sys.argv[1:]]),
    ]
    for name, args in steps:
        print(f"== {name}", flush=True)
        code = run(args)  # type: ignore[arg-type]
        if code != 0:
            print(f"== {name} failed (exit {code})", flush=True)
            sys.exit(code)
    print("== all checks passed", flush=True)
