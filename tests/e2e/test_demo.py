"""The README's main job, run as a user runs it: the installed `scrm` console script."""

from __future__ import annotations

import os
import re
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
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Created the schema" in out
    # Identify: followers synced from the simulator over HTTP, WeCom groups, the shop's orders (once).
    synced = re.search(r"Account demo: ([\d,]+) followers", out)
    assert synced and int(synced.group(1).replace(",", "")) > 1500
    assert re.search(r"Account corp: [\d,]+ contacts, [1-9]\d* groups", out)
    imported = re.findall(r"([\d,]+) orders imported, ([\d,]+) already stored", out)
    assert len(imported) == 2 and imported[0][0] != "0"
    assert imported[1] == ("0", imported[0][0])  # the re-import stores nothing twice
    # Differentiate: scores, leaderboard, communities, one explanation, funnel, churn.
    assert re.search(r"Scored [\d,]+ customers .* communities \(modularity 0\.\d+\)", out)
    assert "Top 10 by social_value" in out and "communities (modularity" in out
    for command in ("explain", "customer", "funnel", "churn"):
        assert f"$ scrm {command}" in out
    # Interact: three followers wrote to the bot through the simulator's signed, encrypted push.
    assert out.count("    bot: ") == 3 and "same reply: True" in out
    # Customise: the campaign ran once; the same run again sent nothing twice.
    sent = re.findall(r"invite_leaders@\S+\): control \d+, sent (\d+)", out)
    assert len(sent) == 2 and int(sent[0]) > 0 and sent[0] == sent[1]
    delivered = re.search(r"delivered ([\d,]+) messages to ([\d,]+) followers; followers who got two: 0", out)
    assert delivered and delivered.group(1) == delivered.group(2) == sent[0]
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
