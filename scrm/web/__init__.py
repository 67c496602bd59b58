"""The web shell: the ASGI app (``create_app``) with the bot's WeChat callback endpoints."""

from __future__ import annotations

from scrm.web.app import create_app

__all__ = ["create_app"]
