"""A WeChat Official Account simulator: a real HTTP server speaking WeChat's JSON wire format.

It serves a seeded, reproducible population (:func:`generate_population`) and enforces the platform's
rules (tokens, quotas, customer-service windows, mass-send limits) on a clock that tests drive
(:class:`SimClock`). :class:`SimulatorServer` runs it on 127.0.0.1 in a background thread; wechatpy's
``WeChatClient`` talks to it with only its base URL changed.
"""

from __future__ import annotations

from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.population import Action, Order, Population, ShareRead, generate_population
from connectors.wechat_sim.push import PushResult, push_actions
from connectors.wechat_sim.server import SimulatorServer
from connectors.wechat_sim.serving import BackgroundServer
from connectors.wechat_sim.state import DEFAULT_PER_MINUTE, DEFAULT_QUOTAS, Credentials

__all__ = [
    "DEFAULT_PER_MINUTE",
    "DEFAULT_QUOTAS",
    "Action",
    "BackgroundServer",
    "Credentials",
    "Order",
    "Population",
    "PushResult",
    "ShareRead",
    "SimClock",
    "SimulatorServer",
    "generate_population",
    "push_actions",
]
