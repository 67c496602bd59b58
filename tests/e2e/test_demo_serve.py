"""``scrm demo --serve``: the demo ends by serving the dashboard and printing its address and a login."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.web.dashboard_env import csrf_of

SCRM = shutil.which("scrm", path=str(Path(sys.executable).parent))
ADDRESS = re.compile(r"Dashboard: (http://127\.0\.0\.1:\d+/) \(log in as (\S+), password (\S+)\)")


def _read_until_address(
    process: subprocess.Popen[str], seconds: float
) -> tuple[re.Match[str] | None, list[str]]:
    """Lines of the process's output up to the dashboard's address line (read in a thread, bounded)."""
    lines: list[str] = []
    found: list[re.Match[str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = ADDRESS.search(line)
            if match:
                found.append(match)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    return (found[0] if found else None), lines


@pytest.mark.skipif(SCRM is None, reason="the scrm console script is not installed next to python")
def test_demo_serve_prints_the_dashboard_address_and_serves_until_stopped(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    process = subprocess.Popen(
        [str(SCRM), "demo", "--workdir", str(tmp_path / "demo"), "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        match, lines = _read_until_address(process, 300)
        assert match is not None, "".join(lines[-40:])
        url, user, password = match.groups()
        assert user == "demo" and len(password) >= 12
        assert "$ scrm score" in "".join(lines)  # the demo's stages ran first
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").text == "ok"
            login = client.get("/", follow_redirects=True)  # the printed address: the sign-in page first
            assert login.status_code == 200 and 'name="password"' in login.text
            # the printed user and password sign in to the dashboard
            form = {"username": user, "password": password, "csrf_token": csrf_of(login.text)}
            answer = client.post("/login", data=form, follow_redirects=True)
            assert answer.status_code == 200 and str(answer.url).endswith("/overview"), answer.url
            assert 'data-testid="current-user">demo (' in answer.text
        time.sleep(0.2)
        assert process.poll() is None  # still serving
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert process.stdout is not None
    with process.stdout:
        assert "The dashboard has stopped." in process.stdout.read()
