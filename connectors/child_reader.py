"""Run a reading generator in a forked child process and stream its items back.

A sync spends as much CPU reading (HTTP, JSON, records) as writing. In a thread of the writing process
both compete for one GIL; in a child process the reads run on a second core. :func:`in_child`
forks a child that runs ``produce()`` and sends each item through a bounded queue (at most ``depth``
items ahead, so memory stays bounded); the parent yields them in order.

- The child is forked, so ``produce`` and what it reaches need no pickling, and the child starts in
  milliseconds. It must use nothing it shares with the parent that is not safe to share (HTTP
  sessions, threads): a connector reads through :meth:`~connectors.base.Connector.fresh_copy`.
- Items must pickle; so must errors, which are raised in the parent (an error that does not pickle
  is raised as :class:`~scrm.errors.ScrmError` with its traceback's text).
- The child dies with its parent: on Linux the kernel kills it when the parent dies (even by
  ``kill -9``), elsewhere it stops at its next item; a parent that stops reading (an error, a
  ``break``) kills it. A sync killed at any point therefore leaves no reader behind.

Only where ``fork`` exists and from the main thread (:func:`available`); callers read in process
elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Generator, Iterator
from queue import Empty, Full
from typing import Any, TypeVar

from scrm.errors import ScrmError

__all__ = ["available", "in_child"]

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def available() -> bool:
    """Whether :func:`in_child` can run here: ``fork`` exists, there is a second CPU to use, and this
    is the main thread. A request thread of a server (an import through the REST API) reads in
    process instead: forking a process whose other threads may hold locks is not safe."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and (os.cpu_count() or 1) >= 2
        and threading.current_thread() is threading.main_thread()
    )


def _die_with(parent: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux); then check it is alive."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the checks at each put remain
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _run(produce: Callable[[], Iterator[Any]], queue: Any, parent: int) -> None:
    """The child: send ("item", x) for each item, then ("done",), or ("error", exception)."""
    _die_with(parent)

    def put(message: tuple[Any, ...]) -> None:
        while True:
            try:
                queue.put(message, timeout=0.5)
                return
            except Full:
                if os.getppid() != parent:
                    os._exit(0)

    try:
        for item in produce():
            put(("item", item))
        put(("done",))
    except BaseException as exc:
        try:
            pickle.dumps(exc)
            put(("error", exc))
        except Exception:
            put(("crash", traceback.format_exc()))
    queue.close()
    queue.join_thread()  # everything sent before the process exits


def in_child(
    produce: Callable[[], Iterator[T]],
    *,
    depth: int = 2,
    name: str = "scrm-reader",
    advice: str = "what was written before is kept: sync again to resume",
) -> Generator[T, None, None]:
    """Items of ``produce()``, run in a forked child process up to ``depth`` items ahead.

    Errors raised in the child are raised here; a child that dies or fails with an error that does
    not pickle raises :class:`~scrm.errors.ScrmError`, with ``advice`` (what to do) in its message.
    Leaving the loop early kills the child.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=depth)
    child = context.Process(target=_run, args=(produce, queue, os.getpid()), name=name, daemon=True)
    child.start()
    try:
        while True:
            try:
                message = queue.get(timeout=1.0)
            except Empty:
                if not child.is_alive():
                    raise ScrmError(
                        f"the reader process stopped (exit code {child.exitcode}); {advice}"
                    ) from None
                continue
            kind = message[0]
            if kind == "item":
                yield message[1]
            elif kind == "done":
                return
            elif kind == "error":
                raise message[1]
            else:
                raise ScrmError(f"the reader process failed ({advice}):\n{message[1]}")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        queue.close()
        queue.cancel_join_thread()
