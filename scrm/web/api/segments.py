"""Segments: the audiences of the campaigns folder and those saved from the web; create, preview.

A saved segment is ``{"name", "description", "where"}``, ``where`` being the table of conditions of a
segment file (see ``campaigns/segments.py``), validated by the same parser with the same messages
(422). Files and saved segments share one name space (409 when the name is taken).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from campaigns import library
from scrm.access import Principal
from scrm.web.api.deps import Page, PagingDep, SettingsDep, StoreDep, marketer, viewer
from scrm.web.api.models import NO_NUL

__all__ = ["router"]

router = APIRouter(prefix="/segments", tags=["segments"])
SegmentName = Annotated[str, Path(max_length=100, pattern=NO_NUL)]
Sample = Annotated[int, Query(ge=0, le=100, description="customers to show")]


class SegmentDefinition(BaseModel):
    """The conditions (``where``) and a description; other keys are refused by the parser."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {"description": "active leaders", "where": {"role": "leader"}}},
    )
    description: str = Field("", max_length=2000)
    where: dict[str, Any]


class NewSegment(SegmentDefinition):
    name: str = Field(max_length=100, description="letters, digits, '_', '-', '.'")


class Segment(BaseModel):
    name: str
    source: str = Field(description="file (of the campaigns folder) or saved (from the web)")
    description: str
    definition: dict[str, Any]
    file: str | None
    created_by: str
    updated_at: datetime | None


class SegmentPreview(BaseModel):
    segment: str
    count: int = Field(description="customers the segment selects now")
    sample: list[dict[str, Any]] = Field(description="the highest social value first")


def _definition(body: SegmentDefinition) -> dict[str, Any]:
    return body.model_dump(exclude={"name"})


@router.get("", response_model=Page[Segment], summary="The segments: files and saved")
def segments(
    store: StoreDep, settings: SettingsDep, page: PagingDep, _caller: Annotated[Principal, viewer]
) -> Any:
    rows = [s.as_dict() for s in library.list_segments(store, settings)]
    return page.of(rows)


@router.post("", response_model=Segment, status_code=201, summary="Save a new segment")
def create_segment(
    body: NewSegment, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Any:
    """422 with the parser's message when invalid, 409 when the name is taken (file or saved)."""
    library.save_segment(store, settings, body.name, _definition(body), caller.actor, create_only=True)
    return library.get_segment(store, settings, body.name).as_dict()


@router.post("/preview", response_model=SegmentPreview, summary="Count and sample of a definition")
def preview_definition(
    body: SegmentDefinition,
    store: StoreDep,
    settings: SettingsDep,
    _caller: Annotated[Principal, viewer],
    sample: Sample = 10,
) -> Any:
    """How many customers the conditions select now, and a sample; nothing is saved."""
    return library.segment_preview(store, settings, _definition(body), sample=sample)


@router.get("/{name}", response_model=Segment, summary="One segment")
def segment(
    name: SegmentName, store: StoreDep, settings: SettingsDep, _caller: Annotated[Principal, viewer]
) -> Any:
    return library.get_segment(store, settings, name).as_dict()


@router.put("/{name}", response_model=Segment, summary="Save (create or replace) a segment")
def replace_segment(
    name: SegmentName,
    body: SegmentDefinition,
    store: StoreDep,
    settings: SettingsDep,
    caller: Annotated[Principal, marketer],
) -> Any:
    """409 for a segment file's name: files are edited in the folder."""
    library.save_segment(store, settings, name, _definition(body), caller.actor)
    return library.get_segment(store, settings, name).as_dict()


@router.delete("/{name}", status_code=204, summary="Delete a saved segment")
def delete_segment(
    name: SegmentName, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Response:
    """409 while a saved campaign uses it, or for a segment file."""
    library.delete_segment(store, settings, name, caller.actor)
    return Response(status_code=204)


@router.get("/{name}/preview", response_model=SegmentPreview, summary="Count and sample of a segment")
def preview_segment(
    name: SegmentName,
    store: StoreDep,
    settings: SettingsDep,
    _caller: Annotated[Principal, viewer],
    sample: Sample = 10,
) -> Any:
    return library.segment_preview(store, settings, name, sample=sample)
