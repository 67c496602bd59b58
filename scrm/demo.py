"""``scrm demo``: the main job end to end on a fresh embedded store.

It writes its own ``config.toml`` and SQLite file into a work folder (recreated on every run, never
touching the user's store), then runs the same commands a user would: ``init``, ``import purchases``
for two bundled order exports (a shop's CSV and a mall's JSON Lines that know the same people by other
keys), ``customers`` and ``customer``. Later stages (sync, score, campaign) join as they are built.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

__all__ = ["run_demo"]

DEMO_CONFIG = """\
# Written by `scrm demo`: an embedded SQLite store in this folder and one simulated WeChat account.
[scrm]
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///scrm.db"

[accounts.demo]
platform = "wechat"
appid = "wxd000000000demo"
secret = "demo-secret-not-real"
display_name = "scrm demo account"
"""


def _step(console: Console, args: list[str], config: Path) -> None:
    from scrm.cli import cli

    shown = " ".join(a if " " not in a else repr(a) for a in args)
    console.print(Rule(f"$ scrm {shown}", align="left", style="cyan"))
    try:
        cli.main(["--config", str(config), *args], prog_name="scrm", standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def run_demo(workdir: Path, console: Console) -> None:
    """Run the demo in ``workdir`` (deleted and recreated) and print every step."""
    from sqlalchemy import select

    from scrm.config import load_settings
    from scrm.models import Identity
    from scrm.store import Store

    if workdir.exists():
        if not (workdir / "config.toml").is_file():
            from scrm.errors import ScrmError

            raise ScrmError(f"{workdir} exists and is not a demo folder; pick another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config = workdir / "config.toml"
    config.write_text(DEMO_CONFIG, encoding="utf-8")
    data = resources.files("scrm") / "data"
    shop = workdir / "shop_orders.csv"
    mall = workdir / "mall_orders.jsonl"
    shop.write_bytes((data / "sample_purchases.csv").read_bytes())
    mall.write_bytes((data / "sample_mall_orders.jsonl").read_bytes())
    console.print(f"[bold]scrm demo[/] in {workdir}/ (a fresh SQLite store and config)", highlight=False)

    _step(console, ["init"], config)
    _step(console, ["import", "purchases", str(shop)], config)
    _step(console, ["import", "purchases", str(mall), "--source", "mall"], config)
    console.print("(importing the same file again stores nothing twice:)")
    _step(console, ["import", "purchases", str(shop)], config)
    _step(console, ["customers", "--sort", "spent", "--limit", "10"], config)

    # Show a customer known by several keys: the import linked a phone and an email.
    store = Store(load_settings(config).database_url)
    try:
        with store.connect() as conn:
            rows = conn.execute(
                select(Identity.customer_id, Identity.kind).order_by(Identity.customer_id)  # type: ignore[call-overload]
            ).all()
    finally:
        store.close()
    kinds: dict[int, set[str]] = {}
    for cid, kind in rows:
        kinds.setdefault(cid, set()).add(kind)
    linked = [cid for cid, k in kinds.items() if len(k) > 1]
    if linked:
        _step(console, ["customer", str(linked[0]), "--limit", "5"], config)
    console.print(Rule(style="cyan"))
    console.print(
        f"Explore further: scrm --config {config} customers --search 138\n"
        f"                 scrm --config {config} customers --json",
        highlight=False,
    )
