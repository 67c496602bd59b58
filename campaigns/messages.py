"""A campaign's messages: each variant's text (a template file or inline) and template fields, rendered
in the sandbox (:mod:`campaigns.render`) for one customer, as the JSON payload a delivery stores."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from campaigns.campaign import Campaign, Variant
from campaigns.render import DEFAULT_TEMPLATES, Renderer

__all__ = ["Messages"]


class Messages:
    """Renders each variant's message for a customer: text and/or template fields (a JSON payload)."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        local = campaign.folder
        self.renderers = [Renderer(local)] if local and local.is_dir() else []
        self.renderers.append(Renderer(DEFAULT_TEMPLATES))
        self.variants = {v.name: v for v in campaign.variants}
        self._by_file: dict[str, Renderer] = {}
        self._compiled: dict[str, jinja2.Template] = {}

    def _file(self, name: str, context: dict[str, Any]) -> str:
        renderer = self._by_file.get(name)
        if renderer is None:
            found = (r for r in self.renderers[:-1] if (r.folder / name).is_file())
            renderer = self._by_file[name] = next(found, self.renderers[-1])
        return renderer.render(name, context)

    def _field(self, key: str, source: str, context: dict[str, Any], *, label: str = "field") -> str:
        """A template field (or inline text), compiled once per campaign (not once per customer)."""
        strings, name = self.renderers[-1], f"{label} {key}"
        compiled = self._compiled.get(source)
        if compiled is None:
            try:
                compiled = self._compiled[source] = strings.env.from_string(source)
            except jinja2.TemplateSyntaxError:
                strings.render_string(source, context, name=name)  # raises the renderer's TemplateError
                raise
        template = compiled
        return strings._run(name, lambda: template, context)

    def render(self, variant: Variant, context: dict[str, Any], channel: str) -> str:
        payload: dict[str, Any] = {}
        if variant.template:
            payload["text"] = self._file(variant.template, context)
        elif variant.text:
            payload["text"] = self._field(variant.name, variant.text, context, label="text of variant")
        if self.campaign.template_id and (channel == "template" or self.campaign.action == "text"):
            fields = {k: self._field(k, v, context) for k, v in variant.fields.items()}
            payload["fields"] = fields or {"first": payload.get("text", "")}
        return json.dumps(payload, ensure_ascii=False)
