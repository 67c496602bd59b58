"""`scrm simulator` as a user runs it: a child process, real HTTP, Ctrl-C, the saved request log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_simulator_command_serves_until_ctrl_c_and_saves_the_log(tmp_path: Path) -> None:
    log, orders = tmp_path / "requests.jsonl", tmp_path / "orders.csv"
    cmd = [sys.executable, "-m", "scrm", "simulator", "--port", "0", "--followers", "40", "--seed", "3"]
    cmd += ["--json", "--secret", "given-secret-1234", "--log", str(log), "--orders-out", str(orders)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        assert info["followers"] == 40 and info["appid"].startswith("wxsim")
        assert "secret" not in info and len(info["encoding_aes_key"]) == 43 and info["token"]
        params = {"grant_type": "client_credential", "appid": info["appid"], "secret": "given-secret-1234"}
        token = httpx.get(info["api_base"] + "token", params=params, timeout=10).json()["access_token"]
        page = httpx.get(info["api_base"] + "user/get", params={"access_token": token}, timeout=10).json()
        assert 0 < page["count"] <= 40
        wrong = httpx.get(info["api_base"] + "token", params={**params, "secret": "nope"}, timeout=10).json()
        assert wrong["errcode"] == 40125
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert "given-secret-1234" not in out + err
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(e["path"], e["errcode"]) for e in entries] == [
        ("/cgi-bin/token", 0),
        ("/cgi-bin/user/get", 0),
        ("/cgi-bin/token", 40125),
    ]
    assert "given-secret-1234" not in log.read_text(encoding="utf-8") and token not in log.read_text("utf-8")
    assert orders.read_text(encoding="utf-8").startswith("order_id,amount,time,currency,openid,account,")
