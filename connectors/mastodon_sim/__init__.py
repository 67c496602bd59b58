"""A Mastodon instance simulator: real HTTP on 127.0.0.1 in Mastodon's JSON shapes and paging.

:func:`generate_population` seeds the brand account's followers (in communities) and their posts
(replies, mentions, boosts); :class:`MastodonSimServer` serves them with bearer-token auth, rate-limit
headers and 429s, injectable 503s, a request log and a driven clock (statuses appear as it advances).
Mastodon.py talks to it with only ``api_base_url`` changed.
"""

from __future__ import annotations

from connectors.mastodon_sim.population import SimAccount, SimPopulation, SimStatus, generate_population
from connectors.mastodon_sim.server import MastodonSimServer

__all__ = ["MastodonSimServer", "SimAccount", "SimPopulation", "SimStatus", "generate_population"]
