"""`python -m scrm` is the `scrm` command."""

from __future__ import annotations

from scrm.cli import main

main()
