"""The sandbox message templates render in: a restricted Django template engine and plain data.

Templates are Django templates compiled by a separate engine that knows a short list of tags and
filters (no `load`, `include`, `extends`, `debug`, `url`, `safe`, …), loads no files and has no
context processors. The context holds plain data only (read-only mappings and lists, text,
numbers, dates): whatever Python object a caller passes is turned into such data first, so a
template cannot reach settings, models or private attributes. A variable that does not exist
fails the render with an error naming it; `{% if %}` and `{% firstof %}` treat it as empty.
"""

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any, ClassVar, Protocol, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.template import (
    Context,
    Engine,
    Template,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import Node, NodeList, VariableDoesNotExist
from django.template.library import Library

from communications.models import Channel, Contact
from tenants.models import Tenant

# --- The restricted engine ----------------------------------------------------------------------

ALLOWED_TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
# Every built-in filter except those that mark text safe (bypassing escaping) or dump objects.
REFUSED_FILTERS = frozenset({"safe", "safeseq", "pprint", "json_script"})
CLOSING_WORDS = frozenset({"else", "elif", "empty", "plural"})

# Filters whose argument sizes their output: `"x"|ljust:"999999999"` would fill a worker's memory.
SIZED_FILTERS = frozenset({"center", "ljust", "rjust", "stringformat", "floatformat"})
MAX_WIDTH = 1000


def bounded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` refusing a width or precision above MAX_WIDTH (it keeps its filter flags)."""

    @functools.wraps(function)
    def filter_with_bound(value: Any, arg: Any = None) -> Any:
        if any(int(number) > MAX_WIDTH for number in re.findall(r"\d+", str(arg))):
            raise ValueError(f"|{name} takes widths and precisions up to {MAX_WIDTH}.")
        return function(value, arg) if arg is not None else function(value)

    return filter_with_bound


# --- The render budget: loop iterations and output size, per part rendered ---------------------


class RenderBudgetExceeded(Exception):
    """A render went past settings.TEMPLATE_RENDER_BUDGET; the message names the limit."""


@dataclass
class RenderBudget:
    iterations: int
    chars: int

    def charge_iteration(self) -> None:
        self.iterations -= 1
        if self.iterations < 0:
            limit = settings.TEMPLATE_RENDER_BUDGET["iterations"]
            raise RenderBudgetExceeded(f"Loops may run at most {limit:,} times in all.")

    def charge_chars(self, count: int) -> None:
        self.chars -= count
        if self.chars < 0:
            limit = settings.TEMPLATE_RENDER_BUDGET["chars"]
            raise RenderBudgetExceeded(f"The output may be at most {limit:,} characters.")


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("template_render_budget", default=None)


class _ChargedNode:
    """A node of a loop's body whose output is charged to the render budget."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def render_annotated(self, context: Context) -> str:
        output = str(self.node.render_annotated(context))
        budget = _BUDGET.get()
        if budget is not None:
            budget.charge_chars(len(output))
        return output


class BudgetedLoop(NodeList):
    """A `{% for %}` body: each pass (ForNode iterates it once per item) costs one iteration."""

    def __iter__(self) -> Iterator[Any]:
        budget = _BUDGET.get()
        if budget is not None:
            budget.charge_iteration()
        return (_ChargedNode(node) for node in super().__iter__())


def budgeted_for(parser: Any, token: Any) -> Node:
    node: Any = defaulttags.do_for(parser, token)
    body: Any = node.nodelist_loop
    loop = BudgetedLoop(body)
    loop.contains_nontext = body.contains_nontext
    node.nodelist_loop = loop
    return cast(Node, node)


MESSAGE_LIBRARY = Library()
for _name in ALLOWED_TAGS:
    MESSAGE_LIBRARY.tags[_name] = defaulttags.register.tags[_name]
MESSAGE_LIBRARY.tags["for"] = budgeted_for
for _name, _filter in defaultfilters.register.filters.items():
    if _name in SIZED_FILTERS:
        MESSAGE_LIBRARY.filters[_name] = bounded(_name, _filter)
    elif _name not in REFUSED_FILTERS:
        MESSAGE_LIBRARY.filters[_name] = _filter

# Rendered in place of a variable that does not exist; found and reported after rendering.
MISSING_MARK = "\x00missing-variable:%s\x00"
MISSING_PATTERN = re.compile("\x00missing-variable:(.*?)\x00", re.IGNORECASE | re.DOTALL)


class MessageEngine(Engine):
    """An engine with only MESSAGE_LIBRARY: Django's default tags and loaders are not installed."""

    default_builtins: ClassVar[list[str]] = []

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            loaders=[],
            context_processors=[],
            debug=True,  # syntax errors carry their line number
            string_if_invalid=MISSING_MARK,
            autoescape=autoescape,
        )

    def get_template_builtins(self, builtins: list[str]) -> list[Library]:
        return [MESSAGE_LIBRARY]

    def get_template_libraries(self, libraries: dict[str, str]) -> dict[str, Library]:
        return {}


HTML_ENGINE = MessageEngine(autoescape=True)
TEXT_ENGINE = MessageEngine(autoescape=False)


# --- Errors and results -------------------------------------------------------------------------


class TemplateRenderError(ValidationError):
    """A template that does not compile or render; `field` names the part at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__({field: [reason]})
        self.field, self.reason = field, reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class MissingVariable(TemplateRenderError):
    """The template uses a variable the context does not have."""

    def __init__(self, field: str, variable: str) -> None:
        super().__init__(field, f"The variable {variable!r} is not defined.")
        self.variable = variable


@dataclass(frozen=True)
class RenderedMessage:
    """What a template says for one recipient: for SMS and WhatsApp only `text` is set."""

    subject: str
    html: str
    text: str


class TemplateSource(Protocol):
    """A tenant's MessageTemplate or a BuiltinTemplate: what rendering reads."""

    @property
    def name(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def html_body(self) -> str: ...
    @property
    def text_body(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def sample_variables(self) -> Any: ...


# --- Plain data for the context -----------------------------------------------------------------


class TemplateData(Mapping[str, Any]):
    """A read-only mapping: templates see its keys and nothing of a Python object behind them."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __str__(self) -> str:
        return ", ".join(f"{key}: {value}" for key, value in self._items.items())

    __repr__ = __str__


class TemplateList(tuple[Any, ...]):
    """A read-only list that prints as `a, b, c`."""

    def __str__(self) -> str:
        return ", ".join(str(item) for item in self)

    __repr__ = __str__


PLAIN_TYPES = (str, int, float, Decimal, datetime, date, time, type(None))
MAX_DEPTH = 10


def plain(value: Any, *, depth: int = 0) -> Any:
    """`value` as template data: mappings, tuples, text, numbers and dates, nothing else."""
    if isinstance(value, PLAIN_TYPES):  # bool is an int
        return value
    if depth >= MAX_DEPTH:
        return str(value)
    if isinstance(value, Contact):
        value = contact_variables(value)
    elif isinstance(value, AbstractBaseUser):
        value = user_variables(value)
    elif isinstance(value, Tenant):
        value = tenant_variables(value)
    if isinstance(value, Mapping):
        return TemplateData(
            {
                str(key): plain(item, depth=depth + 1)
                for key, item in value.items()
                if not str(key).startswith("_")
            }
        )
    if isinstance(value, list | tuple | set | frozenset):
        return TemplateList(plain(item, depth=depth + 1) for item in value)
    return str(value)


def contact_variables(contact: Contact) -> dict[str, Any]:
    """A contact as templates see it: `contact.first_name`, `contact.custom_fields.plan`, ..."""
    first, _, last = contact.name.strip().partition(" ")
    return {
        "id": contact.pk,
        "name": contact.name,
        "first_name": first,
        "last_name": last.strip(),
        "email": contact.email,
        "phone": contact.phone,
        "company": contact.company,
        "tags": list(contact.tags),
        "opted_out": contact.opted_out,
        "custom_fields": dict(contact.custom_fields),
    }


def user_variables(user: AbstractBaseUser) -> dict[str, Any]:
    """A user (the recipient of a notification email) as templates see it."""
    first_name = getattr(user, "first_name", "")
    last_name = getattr(user, "last_name", "")
    full_name = f"{first_name} {last_name}".strip()
    return {
        "username": user.get_username(),
        "name": full_name or user.get_username(),
        "first_name": first_name or full_name or user.get_username(),
        "last_name": last_name,
        "email": getattr(user, "email", ""),
    }


def tenant_variables(tenant: Tenant) -> dict[str, Any]:
    return {"name": tenant.name, "slug": tenant.slug}


def build_context(*, tenant: Tenant, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """The render context: the caller's variables as plain data, and `tenant` (always ours)."""
    context = {key: plain(value) for key, value in (variables or {}).items() if key != "tenant"}
    context["tenant"] = plain(tenant)
    return context


# --- Compiling and rendering --------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def compile_source(source: str, *, html: bool) -> Template:
    """The compiled template; raises TemplateSyntaxError (cached: campaigns render thousands)."""
    engine = HTML_ENGINE if html else TEXT_ENGINE
    return engine.from_string(source)


def render_part(source: str, *, field: str, html: bool, context: dict[str, Any]) -> str:
    """One part (subject, HTML, text, body) rendered; errors name `field` and the variable."""
    if not source:
        return ""
    try:
        template = compile_source(source, html=html)
    except TemplateSyntaxError as error:
        raise TemplateRenderError(field, syntax_message(error)) from None
    limits = settings.TEMPLATE_RENDER_BUDGET
    token = _BUDGET.set(RenderBudget(iterations=limits["iterations"], chars=limits["chars"]))
    try:
        output = template.render(Context(context, autoescape=html))
        if len(output) > limits["chars"]:
            raise RenderBudgetExceeded(f"The output may be at most {limits['chars']:,} characters.")
    except VariableDoesNotExist as error:
        raise MissingVariable(field, str(error.params[0])) from None
    except RenderBudgetExceeded as error:
        raise TemplateRenderError(field, f"It is over the render budget: {error}") from None
    except Exception as error:  # a filter given the wrong kind of value, and the like
        raise TemplateRenderError(field, f"It could not be rendered: {error}") from None
    finally:
        _BUDGET.reset(token)
    missing = MISSING_PATTERN.search(output)
    if missing:
        raise MissingVariable(field, missing.group(1))
    return output


def syntax_message(error: TemplateSyntaxError) -> str:
    """Django's message, with the line, and without advice about {% load %}."""
    message = str(error).replace(" Did you forget to register or load this tag?", "")
    unknown_tag = re.match(r"Invalid block tag on line \d+: '([^']+)'", message)
    unknown_filter = re.match(r"Invalid filter: '([^']+)'", message)
    if unknown_tag and not _is_known_tag(unknown_tag.group(1)):
        message = f"The tag {{% {unknown_tag.group(1)} %}} is not available in message templates."
    elif unknown_filter:
        message = f"The filter |{unknown_filter.group(1)} is not available in message templates."
    debug = getattr(error, "template_debug", None)
    if debug and " on line " not in message:
        message = f"Line {debug['line']}: {message}"
    return message


def _is_known_tag(name: str) -> bool:
    return name in ALLOWED_TAGS or name in CLOSING_WORDS or name.removeprefix("end") in ALLOWED_TAGS


def render_source(template: TemplateSource, *, context: dict[str, Any]) -> RenderedMessage:
    """Render every part of `template` for its channel."""
    if template.channel != Channel.EMAIL:
        text = render_part(template.body, field="body", html=False, context=context)
        return RenderedMessage(subject="", html="", text=text.strip())
    subject = render_part(template.subject, field="subject", html=False, context=context)
    html = render_part(template.html_body, field="html_body", html=True, context=context)
    text = render_part(template.text_body, field="text_body", html=False, context=context)
    return RenderedMessage(
        subject=" ".join(subject.split()),  # a header: one line
        html=html.strip(),
        text=tidy_text(text) if text.strip() else html_to_text(html),
    )


# --- Plain text from HTML -----------------------------------------------------------------------

BLOCK_TAGS = frozenset(
    {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote"}
)
SKIPPED_TAGS = frozenset({"head", "style", "script", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "td":
            self.parts.append(" ")
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href.startswith(("http://", "https://", "mailto:")):
                self.parts.append(f" ({href.removeprefix('mailto:')})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text alternative of an HTML email: paragraphs, list items, link URLs."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return tidy_text("\n".join(line.strip() for line in "".join(extractor.parts).splitlines()))


def tidy_text(text: str) -> str:
    """Trailing spaces dropped, runs of blank lines (left by template tags) made one."""
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()
