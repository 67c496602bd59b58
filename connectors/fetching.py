"""What the platform connectors share for reading: ordered concurrent fetches and a feed client.

:class:`Fetcher` runs ``fetch`` over chunks of ids with up to ``concurrency`` requests in flight and
yields the results in the ids' order (a window of ``2 x concurrency`` chunks, so memory stays
bounded); it also holds the one ``httpx`` client a connector uses for JSON feeds (share reads,
contact events). :meth:`Fetcher.close` releases both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import httpx

__all__ = ["Fetcher"]

T = TypeVar("T")


class Fetcher:
    """Ordered concurrent fetches (threads named ``thread_name``) and a lazily made feed client.

    Examples
    --------
    >>> with Fetcher(concurrency=3, timeout=5.0, thread_name="demo") as f:
    ...     list(f.in_order(lambda chunk: sum(chunk), list(range(10)), 4))
    [6, 22, 17]
    """

    def __init__(self, *, concurrency: int, timeout: float, thread_name: str) -> None:
        self.concurrency = concurrency
        self.timeout = timeout
        self.thread_name = thread_name
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def http(self) -> httpx.Client:
        """The feed client, made on first use."""
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
        return self._http

    def in_order(self, fetch: Callable[[list[str]], T], ids: Sequence[str], size: int) -> Iterator[T]:
        """``fetch`` over chunks of ``size`` ids, up to ``concurrency`` in flight, results in order."""
        chunks = (list(ids[i : i + size]) for i in range(0, len(ids), size))
        if self.concurrency == 1:
            yield from map(fetch, chunks)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.thread_name)
        window: deque[Future[T]] = deque()
        try:
            for chunk in chunks:
                window.append(self._pool.submit(fetch, chunk))
                if len(window) >= 2 * self.concurrency:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def close(self) -> None:
        """Stop the threads (cancelling what has not started) and close the feed client."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._http is not None:
            self._http.close()
            self._http = None
