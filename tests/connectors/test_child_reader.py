"""The forked reader of a sync: items in order, errors raised in the parent, no child left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import child_reader
from scrm.errors import RateLimited, ScrmError

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not child_reader.available(), reason="needs fork and two CPUs")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_items_come_in_order_from_another_process() -> None:
    def produce() -> Iterator[tuple[int, int]]:
        for i in range(500):
            yield i, os.getpid()

    items = list(child_reader.in_child(produce))
    assert [i for i, _ in items] == list(range(500))
    assert {pid for _, pid in items} != {os.getpid()}


def test_an_error_in_the_child_is_raised_here_with_its_class_and_errcode() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise RateLimited("WeChat user/get: rate limited", errcode=45009)

    got: list[int] = []
    with pytest.raises(RateLimited, match="rate limited") as caught:
        for item in child_reader.in_child(produce):
            got.append(item)
    assert got == [1] and caught.value.errcode == 45009


def test_an_error_that_does_not_pickle_arrives_as_its_traceback() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def produce() -> Iterator[int]:
        raise Local("odd failure")
        yield 0

    with pytest.raises(ScrmError, match="odd failure"):
        list(child_reader.in_child(produce))


def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    def produce() -> Iterator[int]:
        yield 1
        os._exit(3)

    with pytest.raises(ScrmError, match="exit code 3"):
        list(child_reader.in_child(produce))


def test_leaving_the_loop_early_stops_the_child() -> None:
    def produce() -> Iterator[int]:
        while True:
            yield os.getpid()

    items = child_reader.in_child(produce)
    pid = next(items)
    items.close()
    assert _gone_within(pid, 5)


def test_the_child_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import itertools, os, sys, time\n"
        "from connectors import child_reader\n"
        "def produce():\n"
        "    for i in itertools.count():\n"
        "        yield os.getpid()\n"
        "        time.sleep(0.01)\n"
        "for pid in child_reader.in_child(produce):\n"
        "    print(pid, flush=True)\n"
        "    time.sleep(3600)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    ) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.send_signal(signal.SIGKILL)
    assert _gone_within(pid, 5)


def test_not_available_from_a_thread_other_than_the_main_one() -> None:
    """A server's request thread (an import through the API) reads in process: no fork with threads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(child_reader.available).result() is False
    assert child_reader.available() is True  # the main thread (this module is skipped otherwise)
