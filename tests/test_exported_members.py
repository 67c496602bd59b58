"""The public surface of the core package is deliberate: pin it."""

from __future__ import annotations

import scrm


def test_core_exports() -> None:
    assert set(scrm.__all__) == {
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
    }
    for name in scrm.__all__:
        assert hasattr(scrm, name), name


def test_every_error_is_a_scrm_error() -> None:
    for name in scrm.__all__:
        value = getattr(scrm, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, scrm.ScrmError), name
