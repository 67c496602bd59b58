"""Message templates: Jinja2 in a sandbox, strict about undefined names.

Templates live in a folder (``templates/messages/`` by default) and are rendered with a plain context
(the follower's openid, channel, tags, scores ...). The environment is a
:class:`~jinja2.sandbox.SandboxedEnvironment` (no attribute access to internals such as ``__class__``,
no unsafe callables) with :class:`~jinja2.StrictUndefined` (a misspelt name is an error, not an empty
string). Every failure, whether a missing template, bad syntax, an undefined name or a sandbox
violation, becomes one :class:`~scrm.errors.TemplateError` that names the template, so callers (the
bot, campaigns) can fall back to a safe message instead of sending a broken one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from scrm.errors import TemplateError

__all__ = ["DEFAULT_TEMPLATES", "Renderer"]

#: seconds a loaded template file is used before its file is checked for changes again
RECHECK_SECONDS = 1.0

#: the message templates shipped with scrm
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "messages"


def _loaded_names(tree: nodes.Template) -> frozenset[str]:
    return frozenset(n.name for n in tree.find_all(nodes.Name) if n.ctx == "load")


class Renderer:
    """Renders message templates from ``folder`` in a sandbox.

    Parameters
    ----------
    folder
        Where the templates are (``templates/messages`` of scrm by default).
    globals
        Extra names every template sees (values or functions; a function runs with the sandbox's
        restrictions on what it returns).

    Examples
    --------
    >>> r = Renderer()
    >>> r.render_string("Hi {{ name }}!", {"name": "Li"})
    'Hi Li!'
    >>> r.render_string("{{ nobody }}", {})
    Traceback (most recent call last):
    ...
    scrm.errors.TemplateError: template '<string>': 'nobody' is undefined
    """

    def __init__(self, folder: str | Path | None = None, *, globals: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder) if folder else DEFAULT_TEMPLATES
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text messages, not HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(globals or {})
        self._names: dict[str, frozenset[str] | None] = {}
        self._loaded: dict[str, tuple[float, jinja2.Template]] = {}  # name -> (checked at, template)

    def names(self, template_name: str) -> frozenset[str] | None:
        """Every name ``template_name`` reads (context names, globals, its own loop variables): a
        superset of what it needs; None when it cannot be loaded or parsed (rendering will say why)."""
        if template_name not in self._names:
            try:
                source = self.env.loader.get_source(self.env, template_name)[0]  # type: ignore[union-attr]
                self._names[template_name] = _loaded_names(self.env.parse(source))
            except jinja2.TemplateError:
                self._names[template_name] = None
        return self._names[template_name]

    def string_names(self, source: str) -> frozenset[str] | None:
        """:meth:`names` of a template given as a string."""
        try:
            return _loaded_names(self.env.parse(source))
        except jinja2.TemplateError:
            return None

    def render(self, template_name: str, context: Mapping[str, Any]) -> str:
        """Render the template file ``template_name`` with ``context``; raise :class:`TemplateError`."""
        return self._run(template_name, lambda: self._template(template_name), context)

    def _template(self, name: str) -> jinja2.Template:
        """The template file ``name``, its file checked for changes at most every ``RECHECK_SECONDS``
        (Jinja checks the file's mtime on every load: a stat per message)."""
        now = time.monotonic()
        cached = self._loaded.get(name)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[1]
        template = self.env.get_template(name)
        self._loaded[name] = (now, template)
        return template

    def render_string(self, source: str, context: Mapping[str, Any], *, name: str = "<string>") -> str:
        """Render a template given as a string (e.g. a news article's title from the config)."""
        return self._run(name, lambda: self.env.from_string(source), context)

    def _run(self, name: str, load: Callable[[], jinja2.Template], context: Mapping[str, Any]) -> str:
        try:
            return load().render(dict(context)).strip()
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template {name!r} not found in {self.folder}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {name!r} line {exc.lineno}: syntax error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {name!r}: {exc.message}") from None
        except SecurityError as exc:
            raise TemplateError(f"template {name!r}: refused by the sandbox: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(f"template {name!r}: {type(exc).__name__}: {exc}") from None
