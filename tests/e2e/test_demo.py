"""The README's main job, run as a user runs it: the installed `scrm` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRM = shutil.which("scrm", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SCRM is None, reason="the scrm console script is not installed next to python")
def test_demo_runs_end_to_end_and_can_run_again(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    for _ in range(2):  # a second run starts afresh in the same folder
        result = subprocess.run(
            [str(SCRM), "demo", "--workdir", str(tmp_path / "demo")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Created the schema" in out
    assert "shop_orders.csv: 600 rows" in out and "600 orders imported" in out
    assert "mall_orders.jsonl: 150 rows" in out and "150 orders imported" in out
    assert "0 orders imported, 600 already stored" in out  # the re-import
    assert "Customers 1-10 of" in out
    assert "import:mall" in out and "import:shop" in out  # a customer known by both shops' keys
    assert not (tmp_path / "scrm.db").exists()  # the demo never touches the user's store


def test_demo_refuses_to_delete_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "scrm", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "not a demo folder" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
