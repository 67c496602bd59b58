"""Where campaigns and segments are defined: the files of the campaigns folder, and the store.

Files (``[campaigns] folder``, ``campaigns.d/``) are read as before. Definitions saved from the web live
in the tables ``saved_segment`` and ``saved_campaign`` as JSON: a segment is ``{"description", "where"}``,
a campaign is the content of a campaign file (``{"campaign": {...}, "audience": {...}}``), validated by
the same parser (:func:`campaigns.campaign.parse_campaign`, same messages) whose ``segment = NAME`` may
also name a saved segment. Files and saved definitions share one name space: a name is either.

This module only reads; :mod:`campaigns.library` saves, deletes and audits.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.campaign import Campaign, load_campaign, load_campaigns, parse_campaign
from campaigns.runner import default_folder
from campaigns.segments import Segment, parse_segment, read_toml
from scrm.config import Settings
from scrm.errors import CampaignError, NotFound
from scrm.models_web import SavedCampaign, SavedSegment
from scrm.store import Store

__all__ = [
    "Definitions",
    "check_name",
    "file_segments",
    "get_campaign",
    "load_definitions",
    "parse_saved_campaign",
    "parse_saved_segment",
]

log = logging.getLogger(__name__)
segment_t = SavedSegment.__table__  # type: ignore[attr-defined]
saved_t = SavedCampaign.__table__  # type: ignore[attr-defined]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_DEPTH = 16  # tables and lists nested in a definition, at most
MAX_NUMBER = 2**53  # the largest number a definition may hold (a store can compare it exactly)


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what the parser would let through but a database could not take: NUL in text, numbers
    too large or not finite, nesting too deep."""
    if depth > MAX_DEPTH:
        raise CampaignError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise CampaignError(f"{where}: text may not contain NUL characters")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise CampaignError(f"{where}: {value!r} is not a number a definition may hold")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json(key, where, depth + 1)
            _check_json(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item, where, depth + 1)


def check_name(name: Any, what: str) -> str:
    """``name`` if it is a valid name for a saved segment or campaign (it goes into URLs and run keys).

    >>> check_name("spring-sale_2", "campaign")
    'spring-sale_2'
    >>> check_name("a b", "campaign")
    Traceback (most recent call last):
    ...
    scrm.errors.CampaignError: campaign name 'a b': use 1 to 100 letters, digits, '_', '-' or '.', \
starting with a letter or digit
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise CampaignError(
            f"{what} name {name!r}: use 1 to 100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def file_segments(settings: Settings) -> dict[str, tuple[Segment, Path]]:
    """The segment files (a ``[segment]`` table) of the campaigns folder, by segment name."""
    folder = default_folder(settings)
    found: dict[str, tuple[Segment, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.toml")):
        data, text = read_toml(path)
        table = data.get("segment")
        if "campaign" in data or not isinstance(table, Mapping):
            continue
        seg = parse_segment(table, source=str(path), text=text)
        found[seg.name] = (seg, path)
    return found


def parse_saved_segment(name: str, definition: Any) -> Segment:
    """Validate a saved segment's definition (``{"description": ..., "where": {...}}``)."""
    source = f"segment {name}"
    if not isinstance(definition, Mapping):
        raise CampaignError(f"{source}: give a table (JSON object) with `where` and maybe `description`")
    if definition.get("name", name) != name:
        raise CampaignError(f"{source}: the definition is named {definition['name']!r}")
    _check_json(definition, source)
    return parse_segment({**definition, "name": name}, source=source)


def parse_saved_campaign(
    definition: Any, settings: Settings, segments: Mapping[str, Segment], *, name: str | None = None
) -> Campaign:
    """Validate a saved campaign's definition as a campaign file; ``name``: what it must be called."""
    if not isinstance(definition, Mapping) or not isinstance(definition.get("campaign"), Mapping):
        raise CampaignError("a campaign definition is a JSON object with a `campaign` table")
    given = definition["campaign"].get("name", name)
    if name is not None and given != name:
        raise CampaignError(f"campaign {name}: the definition is named {given!r}")
    check_name(given, "campaign")
    source = f"campaign {given}"
    _check_json(definition, source)
    folder = default_folder(settings)
    chosen = definition["campaign"].get("segment")
    known_name = isinstance(chosen, str) and (chosen in segments or _folder_file(folder, chosen))
    if chosen is not None and not known_name:
        known = ", ".join(sorted(segments)) or "none"
        raise CampaignError(
            f"{source}: segment = {chosen!r}: no saved segment or segment file of the campaigns folder "
            f"has that name (known: {known})"
        )
    data = {**definition, "campaign": {**definition["campaign"], "name": given}}
    return parse_campaign(data, source=source, folder=folder, segments=segments)


def _folder_file(folder: Path, name: str) -> bool:
    """Whether ``name`` is the bare name of a ``.toml`` file of ``folder`` (a saved definition may
    not make scrm read a file elsewhere)."""
    return (
        name.endswith(".toml")
        and Path(name).name == name
        and not name.startswith(".")
        and (folder / name).is_file()
    )


@dataclass
class Definitions:
    """Everything defined, from both sources.

    ``campaigns`` / ``segments``: the valid ones by name; ``source`` is ``file`` or ``saved`` per name;
    ``raw``: the definition of each (a file's parsed TOML, a saved one's JSON); ``broken``: saved
    campaigns that no longer validate (a segment they name was deleted ...), with the reason.
    """

    campaigns: dict[str, Campaign]
    segments: dict[str, Segment]
    source: dict[str, str]
    raw: dict[str, dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    broken: dict[str, str]


def _saved_rows(conn: Connection, table: Any) -> list[Any]:
    c = table.c
    return list(
        conn.execute(
            sa.select(c.name, c.definition, c.created_by, c.created_at, c.updated_at).order_by(c.name)
        )
    )


def load_definitions(store: Store, settings: Settings, *, files: bool = True) -> Definitions:
    """Campaigns and segments of the folder (``files``) and of the store."""
    folder = default_folder(settings)
    defs = Definitions({}, {}, {}, {}, {}, {})
    if files:
        for name, (seg, path) in file_segments(settings).items():
            defs.segments[name] = seg
            defs.source[f"segment:{name}"] = "file"
            defs.meta[f"segment:{name}"] = {"file": str(path)}
        if folder.is_dir():
            for name, c in load_campaigns(folder).items():
                defs.campaigns[name] = c
                defs.source[name] = "file"
                defs.meta[name] = {"file": c.source}
    with store.connect() as conn:
        seg_rows, camp_rows = _saved_rows(conn, segment_t), _saved_rows(conn, saved_t)
    for name, text, by, created, updated in seg_rows:
        meta = {"created_by": by, "created_at": created, "updated_at": updated}
        defs.raw[f"segment:{name}"], defs.meta[f"segment:{name}"] = json.loads(text), meta
        if f"segment:{name}" in defs.source:
            log.warning("saved segment %s is shadowed by a file of the same name", name)
            continue
        defs.source[f"segment:{name}"] = "saved"
        defs.segments[name] = parse_saved_segment(name, defs.raw[f"segment:{name}"])
    for name, text, by, created, updated in camp_rows:
        if name in defs.source:
            log.warning("saved campaign %s is shadowed by the file %s", name, defs.campaigns[name].source)
            continue
        defs.source[name], defs.raw[name] = "saved", json.loads(text)
        defs.meta[name] = {"created_by": by, "created_at": created, "updated_at": updated}
        try:
            defs.campaigns[name] = parse_saved_campaign(defs.raw[name], settings, defs.segments, name=name)
        except CampaignError as exc:
            defs.broken[name] = str(exc)
    return defs


def get_campaign(store: Store, settings: Settings, name: str) -> Campaign:
    """The campaign called ``name``, from the folder or the store (or the campaign file ``name``)."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return load_campaign(path)
    defs = load_definitions(store, settings)
    if name in defs.broken:
        raise CampaignError(defs.broken[name])
    if name not in defs.campaigns:
        known = ", ".join(sorted(defs.campaigns)) or "none"
        raise NotFound(f"no campaign {name!r} in {default_folder(settings)} or saved (found: {known})")
    return defs.campaigns[name]
