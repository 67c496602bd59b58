"""Run the Mastodon simulator in the foreground: ``python -m connectors.mastodon_sim [--port 8710]``.

It prints the ``[accounts.NAME]`` table to paste into config.toml (the token is the simulator's own,
not a secret of any real instance), then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib

from connectors.mastodon_sim.population import generate_population
from connectors.mastodon_sim.server import MastodonSimServer


def main() -> None:
    parser = argparse.ArgumentParser(description="A Mastodon instance simulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--accounts", type=int, default=500, help="people on the instance")
    parser.add_argument("--statuses", type=int, default=3000, help="posts, replies, mentions and boosts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    population = generate_population(args.accounts, statuses=args.statuses, seed=args.seed)
    server = MastodonSimServer(population, port=args.port)
    server.bind()
    print(
        f"""Mastodon simulator on {server.base_url}: {len(population.follows)} followers of the brand,
{len(population.statuses)} statuses. Add to config.toml:

[accounts.fediverse]
platform = "mastodon"
api_base_url = "{server.base_url}"
access_token = "{server.token}"
handle = "brand@{population.domain}"
""",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
