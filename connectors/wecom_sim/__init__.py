"""A WeCom (企业微信) simulator: a real HTTP server speaking WeCom's JSON wire format.

It serves a seeded, reproducible corp (:func:`generate_wecom_population`: staff, external contacts,
customer groups, their changes over time) on a clock that tests drive (the Official Account
simulator's :class:`~connectors.wechat_sim.SimClock`). :class:`WeComSimulator` runs it on 127.0.0.1
in a background thread (the same :class:`~connectors.wechat_sim.BackgroundServer`); wechatpy's WeCom
client talks to it with only its base URL changed.
"""

from __future__ import annotations

from connectors.wecom_sim.population import CHANNELS, WeComPopulation, generate_wecom_population
from connectors.wecom_sim.server import WeComSimulator
from connectors.wecom_sim.state import TOKEN_SECONDS, WeComCredentials

__all__ = [
    "CHANNELS",
    "TOKEN_SECONDS",
    "WeComCredentials",
    "WeComPopulation",
    "WeComSimulator",
    "generate_wecom_population",
]
