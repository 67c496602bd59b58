"""scrm: a social CRM community engine.

The core package: settings (:mod:`scrm.config`), the data model (:mod:`scrm.models`), the store
(:mod:`scrm.store`), identity resolution (:mod:`scrm.identity`) and the exception tree
(:mod:`scrm.errors`). It imports nothing from ``connectors``, ``graph`` or ``campaigns``; the CLI
(:mod:`scrm.cli`) is the shell that wires them together.
"""

from __future__ import annotations

from scrm.config import Settings, load_settings
from scrm.errors import (
    ConfigError,
    ConnectorError,
    ImportFileError,
    NotFound,
    RateLimited,
    SchemaOutOfDate,
    ScrmError,
    StoreError,
    TokenRejected,
)
from scrm.store import Store

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConnectorError",
    "ImportFileError",
    "NotFound",
    "RateLimited",
    "SchemaOutOfDate",
    "ScrmError",
    "Settings",
    "Store",
    "StoreError",
    "TokenRejected",
    "__version__",
    "load_settings",
]
