"""The ``scrm`` command line: a thin shell over the library.

Exit codes: 0 done; 1 error (the message says what to do); 2 wrong usage;
3 done, but some input rows were rejected (listed in the output).

The group and what commands share live in :mod:`scrm.cli._common`; each module here adds the
commands of one area to it (``_core``: init, import, customers, customer, config, demo).
"""

from __future__ import annotations

from scrm.cli import (
    _access,  # noqa: F401
    _bot,  # noqa: F401
    _campaigns,  # noqa: F401
    _core,  # noqa: F401  (registers its commands)
    _mastodon,  # noqa: F401
    _merges,  # noqa: F401
    _scoring,  # noqa: F401
    _serve,  # noqa: F401
    _simulator,  # noqa: F401
    _sync,  # noqa: F401
    _wecom,  # noqa: F401
)
from scrm.cli._common import EXIT_REJECTED, cli

__all__ = ["EXIT_REJECTED", "cli", "main"]


def main() -> None:
    cli(prog_name="scrm")
