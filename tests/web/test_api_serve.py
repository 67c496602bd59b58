"""`scrm serve` serves the REST API, also with no bot account, to a token made with `scrm token create`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scrm_serve_answers_the_api_without_a_bot_account(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "scrm.db"}"\n', encoding="utf-8")
    scrm = Path(sys.executable).with_name("scrm")
    env = {**os.environ, "SCRM_CONFIG": str(config)}
    subprocess.run([str(scrm), "init"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [str(scrm), "token", "create", "--name", "ops", "--role", "viewer"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = made.stdout.strip()
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(scrm), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    answer = httpx.get(base + "/customers", headers={"Authorization": f"Bearer {token}"})
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                pytest.fail("scrm serve did not start: " + log_path.read_text())
            assert answer.status_code == 200 and answer.json()["total"] == 0
            assert httpx.get(base + "/customers").status_code == 401
            assert httpx.get(base + "/openapi.json").json()["info"]["title"] == "scrm API"
        finally:
            server.terminate()
            server.wait(timeout=20)
    output = log_path.read_text()
    assert "the bot is off" in output and f"http://127.0.0.1:{port}/api/v1" in output
    assert token not in output
