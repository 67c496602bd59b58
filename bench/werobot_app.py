"""WeRoBot answering bench/bench_bot.py's workload: the same keyword rule, safe mode, under gunicorn.

Runs in its own virtual environment (bench/out/venv-werobot: `pip install werobot gunicorn
cryptography`), never scrm's. BOT_SESSION=1 keeps WeRoBot's default session store (SQLite), else off.

    BOT_TOKEN=... BOT_AES_KEY=... BOT_APPID=... gunicorn -w 2 --chdir bench werobot_app:app
"""

from __future__ import annotations

import os

import werobot  # type: ignore[import-not-found]

HELP = 'Reply "price" for our price list, "store" for the nearest store, or just ask.'
robot = werobot.WeRoBot(
    token=os.environ["BOT_TOKEN"],
    encoding_aes_key=os.environ["BOT_AES_KEY"],
    app_id=os.environ["BOT_APPID"],
    enable_session=os.environ.get("BOT_SESSION") == "1",
    session_storage=None,
)


@robot.filter("help")
def help_reply(message: object) -> str:
    return HELP


app = robot.wsgi
