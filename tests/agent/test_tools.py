"""siphon.agent.tools: schemas from type hints, binding, and running the model's calls."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import enum
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, Optional, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siphon.agent.tools import (
    MAX_RESULT_CHARS,
    FunctionTool,
    RunContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    Toolset,
    format_result,
    function_tool,
)
from siphon.plugins.base import ToolCall

if TYPE_CHECKING:
    from decimal import Decimal  # only for the "not importable at runtime" test


# -- helpers -----------------------------------------------------------------------------------
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Slot:
    """A bookable slot.

    Attributes:
        day: Day of the week.
    """

    day: Literal["mon", "tue"]
    hour: int = 9


class Address(TypedDict):
    street: str
    zip: NotRequired[str]


@dataclass
class Node:
    children: list[Node]


class FieldLike:
    """Stands in for pydantic.Field: anything with a ``description`` attribute."""

    def __init__(self, description: str) -> None:
        self.description = description


def tool_for(annotation: Any, **defaults: Any) -> FunctionTool[..., Any]:
    """A tool with one parameter ``x`` of the given (already evaluated) annotation."""

    def probe(x):  # type: ignore[no-untyped-def]
        return x

    probe.__annotations__ = {"x": annotation}
    if "default" in defaults:
        probe.__defaults__ = (defaults["default"],)
    return function_tool(probe)


def schema_of(annotation: Any) -> dict[str, Any]:
    return tool_for(annotation).parameters["properties"]["x"]


def context(tool_call_id: str) -> RunContext:
    return RunContext(call_id="call-1", tool_call_id=tool_call_id, userdata={"n": 1})


def no_context(tool_call_id: str) -> RunContext:
    raise AssertionError("a tool without a RunContext parameter must not get one")


async def run(
    registry: ToolRegistry, name: str, arguments: str | dict[str, Any] = "{}"
) -> ToolResult:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return await registry.execute(ToolCall(id="tc-1", name=name, arguments=text), context)


async def run_tool(tool: Any, arguments: str | dict[str, Any] = "{}") -> ToolResult:
    registry = ToolRegistry([tool])
    return await run(registry, registry.names[0], arguments)


# -- schema: one row per supported annotation --------------------------------------------------
SLOT_SCHEMA = {
    "type": "object",
    "properties": {
        "day": {"type": "string", "enum": ["mon", "tue"], "description": "Day of the week."},
        "hour": {"type": "integer", "default": 9},
    },
    "required": ["day"],
    "additionalProperties": False,
    "description": "A bookable slot.",
}

SCHEMA_ROWS: list[tuple[str, Any, dict[str, Any]]] = [
    ("str", str, {"type": "string"}),
    ("int", int, {"type": "integer"}),
    ("float", float, {"type": "number"}),
    ("bool", bool, {"type": "boolean"}),
    ("None", None, {"type": "null"}),
    ("Optional", Optional[str], {"anyOf": [{"type": "string"}, {"type": "null"}]}),  # noqa: UP045
    ("X | None", int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    ("union", int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    ("list", list[int], {"type": "array", "items": {"type": "integer"}}),
    ("bare list", list, {"type": "array", "items": {}}),
    ("Sequence", Sequence[str], {"type": "array", "items": {"type": "string"}}),
    ("tuple ...", tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (
        "tuple fixed",
        tuple[int, str],
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "minItems": 2,
            "maxItems": 2,
        },
    ),
    ("set", set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
    (
        "frozenset",
        frozenset[int],
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
    ),
    ("dict", dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
    ("bare dict", dict, {"type": "object"}),
    ("Literal str", Literal["mon", "tue"], {"type": "string", "enum": ["mon", "tue"]}),
    ("Literal int", Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
    ("Literal mixed", Literal["a", 1], {"enum": ["a", 1]}),
    ("Enum", Color, {"type": "string", "enum": ["red", "blue"]}),
    ("IntEnum", Level, {"type": "integer", "enum": [1, 2]}),
    ("dataclass", Slot, SLOT_SCHEMA),
    (
        "TypedDict",
        Address,
        {
            "type": "object",
            "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["street"],
            "additionalProperties": False,
        },
    ),
    ("nested", list[Slot], {"type": "array", "items": SLOT_SCHEMA}),
    ("Annotated str", Annotated[str, "The day"], {"type": "string", "description": "The day"}),
    (
        "Annotated Field",
        Annotated[int, FieldLike("How many")],
        {"type": "integer", "description": "How many"},
    ),
    (
        "Annotated inside",
        list[Annotated[str, "a name"]],
        {"type": "array", "items": {"type": "string", "description": "a name"}},
    ),
    ("datetime", dt.datetime, {"type": "string", "format": "date-time"}),
    ("date", dt.date, {"type": "string", "format": "date"}),
    ("time", dt.time, {"type": "string", "format": "time"}),
    ("Any", Any, {}),
]


@pytest.mark.parametrize(
    ("annotation", "expected"), [r[1:] for r in SCHEMA_ROWS], ids=[r[0] for r in SCHEMA_ROWS]
)
def test_schema_per_type(annotation: Any, expected: dict[str, Any]) -> None:
    assert schema_of(annotation) == expected


def test_top_level_schema_shape_required_and_defaults() -> None:
    @function_tool
    def book(
        name: str, slot: str, notes: str | None = None, count: int = 1, color: Color = Color.RED
    ) -> str:
        return name

    assert book.parameters == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "slot": {"type": "string"},
            "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "count": {"type": "integer", "default": 1},
            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
        },
        "required": ["name", "slot"],
        "additionalProperties": False,
    }


def test_default_without_json_form_is_left_out_of_the_schema() -> None:
    marker = object()
    schema = tool_for(Any, default=marker).parameters
    assert schema["properties"]["x"] == {}
    assert schema["required"] == []


def test_schema_is_json_serialisable() -> None:
    for _, annotation, _ in SCHEMA_ROWS:
        json.dumps(tool_for(annotation).spec.parameters)


UNSUPPORTED: list[tuple[str, Any]] = [
    ("bytes", bytes),
    ("complex", complex),
    ("plain class", FieldLike),
    ("int keys", dict[int, str]),
    ("nested bad", list[bytes]),
    ("recursive dataclass", Node),
    ("Literal of object", Literal[b"x"]),
]


@pytest.mark.parametrize("annotation", [r[1] for r in UNSUPPORTED], ids=[r[0] for r in UNSUPPORTED])
def test_unsupported_annotation_is_a_type_error_naming_function_and_parameter(
    annotation: Any,
) -> None:
    with pytest.raises(TypeError) as info:
        tool_for(annotation)
    message = str(info.value)
    assert "probe" in message
    assert "'x" in message  # parameter x (or a path inside it: x[], x.children)
    assert "Supported types: str, int" in message


def test_missing_annotation_and_var_args_are_type_errors() -> None:
    def untyped(day, n: int) -> None:  # type: ignore[no-untyped-def]
        pass

    def star(*args: int) -> None:
        pass

    with pytest.raises(TypeError, match="parameter 'day' has no type annotation"):
        function_tool(untyped)
    with pytest.raises(TypeError, match=r"\*args"):
        function_tool(star)


def test_hint_only_importable_under_type_checking_is_a_clear_type_error() -> None:
    def price(amount: Decimal) -> None:
        pass

    with pytest.raises(TypeError, match=r"cannot resolve its type hints.*TYPE_CHECKING"):
        FunctionTool(price)


def test_local_classes_resolve_under_future_annotations() -> None:
    # This module uses `from __future__ import annotations`: "Booking" is a string that
    # only the decorating scope's locals can resolve.
    @dataclass
    class Booking:
        who: str

    @function_tool
    def book(booking: Booking) -> str:
        return booking.who

    assert book.parameters["properties"]["booking"]["properties"] == {"who": {"type": "string"}}


def test_invalid_names_and_timeouts_are_rejected() -> None:
    def f() -> None:
        pass

    with pytest.raises(ValueError, match="tool names"):
        function_tool(name="has space")(f)
    with pytest.raises(ValueError, match="timeout"):
        function_tool(timeout=0)(f)

    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        function_tool(gen)


# -- descriptions ---------------------------------------------------------------------------------
def test_docstring_summary_and_google_args() -> None:
    @function_tool
    async def check_calendar(date: str, tz: str, flag: bool, ctx: RunContext) -> list[str]:
        """Look up free
        slots in the calendar.

        Longer explanation that is not part of the summary.

        Args:
            date: The day, as YYYY-MM-DD.
            tz (str): An IANA zone name,
                for example Europe/Paris.

                Defaults to the office's.
            flag:
                Described on the next line.

        Returns:
            The free slots.
        """
        return []

    assert check_calendar.description == "Look up free slots in the calendar."
    props = check_calendar.parameters["properties"]
    assert props["date"]["description"] == "The day, as YYYY-MM-DD."
    assert props["tz"]["description"] == (
        "An IANA zone name, for example Europe/Paris. Defaults to the office's."
    )
    assert props["flag"]["description"] == "Described on the next line."
    assert "ctx" not in props


def test_summary_stops_at_a_section_header_and_annotated_wins() -> None:
    @function_tool
    def f(a: Annotated[int, "from Annotated"]) -> None:
        """Do it.
        Args:
            a: from the docstring
        """

    assert f.description == "Do it."
    assert f.parameters["properties"]["a"]["description"] == "from Annotated"


def test_no_docstring_and_explicit_name_description() -> None:
    @function_tool(name="book", description="Book a slot.")
    def book_appointment(name: str) -> str:
        """Ignored summary."""
        return name

    def bare(x: int) -> int:
        return x

    assert (book_appointment.name, book_appointment.description) == ("book", "Book a slot.")
    assert book_appointment.spec.name == "book"
    assert function_tool(bare).description == ""


# -- the function side ----------------------------------------------------------------------------
async def test_tools_stay_callable_like_the_function() -> None:
    @function_tool
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @function_tool
    async def greet(name: str, ctx: RunContext) -> str:
        return f"hi {name} from {ctx.call_id}"

    assert add(1) == 3
    assert add(1, b=5) == 6
    assert await greet("Ann", context("t")) == "hi Ann from call-1"
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert greet.is_async and not add.is_async


class Calendar(Toolset):
    def __init__(self, days: list[str]) -> None:
        self.days = days

    @function_tool
    async def free_slots(self, day: Literal["mon", "tue"]) -> list[str]:
        """Free slots on a day."""
        return [f"{day} {d}" for d in self.days]

    @function_tool(name="count_days")
    def count(self) -> int:
        return len(self.days)

    def helper(self) -> None:  # not a tool
        pass

    @function_tool
    @staticmethod
    def today(fmt: str = "%A") -> str:
        return fmt

    @function_tool
    @classmethod
    def kind(cls, upper: bool = False) -> str:
        return cls.__name__.upper() if upper else cls.__name__


class BigCalendar(Calendar):
    @function_tool
    def count(self) -> int:  # overrides: same attribute, tool name back to "count"
        return 100

    @function_tool
    def holidays(self, year: int) -> list[str]:
        return [str(year)]


async def test_methods_bind_to_their_instance() -> None:
    calendar = Calendar(["9:00"])
    tool = calendar.free_slots
    assert isinstance(tool, FunctionTool)
    assert list(tool.parameters["properties"]) == ["day"]  # no self
    assert await tool("mon") == ["mon 9:00"]
    assert await Calendar.free_slots(calendar, "tue") == ["tue 9:00"]  # unbound: self explicit
    assert Calendar.free_slots.needs_binding and not tool.needs_binding
    assert calendar.count() == 1
    assert Calendar.today() == "%A" and calendar.today("x") == "x"
    assert calendar.kind() == "Calendar" and Calendar.kind(upper=True) == "CALENDAR"
    result = await run_tool(tool, {"day": "tue"})
    assert result.content == '["tue 9:00"]'


async def test_methods_bind_on_any_class() -> None:
    class Plain:
        prefix = "p"

        @function_tool
        def name(self, x: str) -> str:
            return self.prefix + x

    obj = Plain()
    assert obj.name("1") == "p1"
    assert (await run_tool(obj.name, {"x": "2"})).content == "p2"


def test_toolset_discovers_tools_in_definition_order_including_inherited() -> None:
    assert [t.name for t in Calendar([]).tools()] == ["free_slots", "count_days", "today", "kind"]
    big = BigCalendar(["a"])
    names = [t.name for t in big.tools()]
    assert names == ["free_slots", "count", "today", "kind", "holidays"]
    assert {t.name: t for t in big.tools()}["count"]() == 100


def test_registry_accepts_tools_toolsets_and_plain_functions() -> None:
    def lookup(order_id: str) -> str:
        """Find an order."""
        return order_id

    @function_tool
    def ping() -> str:
        return "pong"

    registry = ToolRegistry([ping, Calendar([]), lookup])
    assert registry.names == ["ping", "free_slots", "count_days", "today", "kind", "lookup"]
    assert [s.name for s in registry.specs] == registry.names
    assert registry.get("lookup") is not None and registry.get("nope") is None
    assert "ping" in registry and len(registry) == 6
    assert registry.get("lookup").description == "Find an order."  # type: ignore[union-attr]


def test_registry_rejects_duplicates_naming_both() -> None:
    @function_tool(name="free_slots")
    def other(day: str) -> str:
        return day

    with pytest.raises(ValueError) as info:
        ToolRegistry([Calendar([]), other])
    message = str(info.value)
    assert "'free_slots'" in message
    assert "Calendar.free_slots" in message and "other" in message


def test_registry_rejects_what_it_cannot_call() -> None:
    with pytest.raises(TypeError, match="pass an instance"):
        ToolRegistry([Calendar])
    with pytest.raises(TypeError, match="pass an instance"):
        ToolRegistry([Calendar.free_slots])
    with pytest.raises(TypeError, match="not a tool"):
        ToolRegistry([42])

    class Plain:
        def method(self, x: int) -> int:
            return x

    with pytest.raises(TypeError, match="pass an instance"):
        ToolRegistry([Plain.method])
    assert ToolRegistry([Plain().method]).names == ["method"]  # bound: fine


# -- execution ------------------------------------------------------------------------------------
async def test_context_is_injected_under_any_name_and_not_shown() -> None:
    seen: list[RunContext] = []

    @function_tool
    async def whoami(greeting: str, the_call: RunContext) -> str:
        seen.append(the_call)
        return f"{greeting} {the_call.call_id} {the_call.tool_call_id}"

    assert list(whoami.parameters["properties"]) == ["greeting"]
    assert whoami.needs_context
    result = await run_tool(whoami, {"greeting": "hi"})
    assert result.content == "hi call-1 tc-1"
    assert seen[0].userdata == {"n": 1}


async def test_tools_without_context_do_not_get_one() -> None:
    @function_tool
    def plain(x: int) -> int:
        return x

    registry = ToolRegistry([plain])
    call = ToolCall(id="a", name="plain", arguments='{"x": 3}')
    result = await registry.execute(call, no_context)
    assert (result.content, result.is_error) == ("3", False)


async def test_sync_tool_runs_in_a_worker_thread_and_the_loop_keeps_ticking() -> None:
    loop_thread = threading.get_ident()

    @function_tool
    def slow() -> int:
        time.sleep(0.5)
        return threading.get_ident()

    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    try:
        result = await run_tool(slow)
    finally:
        ticking.cancel()
    assert not result.is_error
    assert result.value != loop_thread
    assert result.duration >= 0.5
    assert len(lags) >= 20  # ~50 expected in 0.5 s
    assert max(lags) < 0.1


async def test_sync_tool_sees_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("call-42")

    @function_tool
    def read() -> str:
        return var.get()

    assert (await run_tool(read)).content == "call-42"


async def test_async_tool_runs_on_the_loop() -> None:
    @function_tool
    async def fetch(n: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"n": n, "thread": threading.get_ident()}

    result = await run_tool(fetch, {"n": 2})
    assert result.value == {"n": 2, "thread": threading.get_ident()}
    assert json.loads(result.content)["n"] == 2


async def test_exception_becomes_an_error_result_and_execution_continues() -> None:
    @function_tool
    def book(slot: str) -> str:
        if slot == "bad":
            raise ValueError("no such slot")
        return f"booked {slot}"

    @function_tool
    async def empty() -> None:
        raise RuntimeError

    registry = ToolRegistry([book, empty])
    failed = await run(registry, "book", {"slot": "bad"})
    assert failed.is_error
    assert failed.content == "error: ValueError: no such slot"
    assert isinstance(failed.value, ValueError)
    assert (await run(registry, "empty")).content == "error: RuntimeError"
    ok = await run(registry, "book", {"slot": "9:00"})
    assert (ok.is_error, ok.content) == (False, "booked 9:00")


async def test_tool_error_message_goes_to_the_model_alone() -> None:
    @function_tool
    async def book(slot: str) -> str:
        raise ToolError("that slot was just taken; offer another one")

    result = await run_tool(book, {"slot": "9"})
    assert result.is_error
    assert result.content == "that slot was just taken; offer another one"


async def test_cancellation_propagates() -> None:
    @function_tool
    async def hang() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_tool(hang)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "error: arguments are not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "error: maximum recursion depth"),
        ("[1, 2]", "error: arguments must be a JSON object"),
        ("{}", "error: argument 'date' is required"),
        ('{"date": "x", "dat": 1}', "error: unknown argument 'dat' (expected: date, count)"),
        ('{"date": 3}', "error: argument 'date' must be a string, got integer 3"),
        (
            '{"date": "x", "count": "3"}',
            "error: argument 'count' must be an integer, got string \"3\"",
        ),
        (
            '{"date": "x", "count": 3.5}',
            "error: argument 'count' must be an integer, got number 3.5",
        ),
        (
            '{"date": "x", "count": true}',
            "error: argument 'count' must be an integer, got boolean true",
        ),
    ],
)
async def test_bad_arguments_become_messages_the_model_can_fix(
    arguments: str, expected: str
) -> None:
    @function_tool
    def check(date: str, count: int = 1) -> str:
        return date

    result = await run_tool(check, arguments)
    assert result.is_error
    assert result.content.startswith(expected), result.content
    assert result.value is None


async def test_all_problems_are_reported_at_once() -> None:
    @function_tool
    def book(slot: Slot, name: str) -> str:
        return name

    result = await run_tool(book, {"slot": {"day": "wed", "x": 1}})
    assert result.content == (
        "error: unknown argument 'slot.x' (expected: day, hour); "
        'argument \'slot.day\' must be one of "mon", "tue", got string "wed"; '
        "argument 'name' is required"
    )


async def test_unknown_tool() -> None:
    result = await run(ToolRegistry([Calendar([])]), "nope")
    assert result.is_error
    assert result.content.startswith("error: unknown tool 'nope'. Available tools: free_slots")


CONVERSIONS: list[tuple[str, Any, Any, Any]] = [
    ("int from integral float", int, 3.0, 3),
    ("float from int", float, 2, 2.0),
    ("Enum", Color, "blue", Color.BLUE),
    ("IntEnum", Level, 2, Level.HIGH),
    ("Literal", Literal["mon", "tue"], "tue", "tue"),
    ("dataclass", Slot, {"day": "mon"}, Slot("mon", 9)),
    ("list of dataclass", list[Slot], [{"day": "tue", "hour": 3}], [Slot("tue", 3)]),
    ("TypedDict", Address, {"street": "Main"}, {"street": "Main"}),
    ("tuple", tuple[int, str], [1, "a"], (1, "a")),
    ("tuple ...", tuple[int, ...], [1, 2], (1, 2)),
    ("set", set[str], ["a", "a"], {"a"}),
    ("dict", dict[str, Color], {"k": "red"}, {"k": Color.RED}),
    ("Optional None", int | None, None, None),
    ("union order", int | float, 3, 3),
    ("date", dt.date, "2025-03-04", dt.date(2025, 3, 4)),
    (
        "datetime",
        dt.datetime,
        "2025-03-04T14:05:00+01:00",
        dt.datetime.fromisoformat("2025-03-04T14:05:00+01:00"),
    ),
    ("time", dt.time, "14:05", dt.time(14, 5)),
    ("Any", Any, {"free": [1]}, {"free": [1]}),
]


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [r[1:] for r in CONVERSIONS],
    ids=[r[0] for r in CONVERSIONS],
)
async def test_arguments_are_converted_to_python_types(
    annotation: Any, value: Any, expected: Any
) -> None:
    result = await run_tool(tool_for(annotation), {"x": value})
    assert not result.is_error, result.content
    assert result.value == expected
    assert type(result.value) is type(expected)


REJECTIONS: list[tuple[str, Any, Any, str]] = [
    ("bool is not int", int, True, "must be an integer, got boolean true"),
    ("Literal", Literal["mon"], "wed", 'must be one of "mon", got string "wed"'),
    ("Literal 1 is not True", Literal[1], True, "must be one of 1"),
    ("Enum", Color, "RED", 'must be one of "red", "blue"'),
    ("date", dt.date, "tomorrow", "must be an ISO 8601 date string"),
    ("tuple length", tuple[int, str], [1], "exactly 2 items"),
    ("list item", list[int], [1, "2"], "argument 'x[1]' must be an integer"),
    ("dict value", dict[str, int], {"a": "b"}, "argument 'x.a' must be an integer"),
    ("nested via Optional", Slot | None, {"hour": 1}, "argument 'x.day' is required"),
    ("union", int | None, "3", 'must be an integer or null, got string "3"'),
    ("huge int for float", float, 10**400, "must be a number"),
    ("unhashable set item", set[Any], [[1]], "must be an array"),
]


@pytest.mark.parametrize(
    ("annotation", "value", "fragment"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
async def test_wrong_values_are_rejected_with_a_reason(
    annotation: Any, value: Any, fragment: str
) -> None:
    result = await run_tool(tool_for(annotation), {"x": value})
    assert result.is_error
    assert fragment in result.content, result.content


async def test_null_for_an_optional_argument_means_its_default() -> None:
    @function_tool
    def f(a: int = 5, b: str | None = "keep") -> str:
        return f"{a} {b}"

    assert (await run_tool(f, {"a": None, "b": None})).content == "5 None"


async def test_dataclass_post_init_errors_are_argument_errors() -> None:
    @dataclass
    class Party:
        size: int

        def __post_init__(self) -> None:
            if self.size < 1:
                raise ValueError("size must be at least 1")

    @function_tool
    def book(party: Party) -> int:
        return party.size

    result = await run_tool(book, {"party": {"size": 0}})
    assert (
        result.content == "error: argument 'party' is invalid: ValueError: size must be at least 1"
    )


async def test_positional_only_parameters() -> None:
    @function_tool
    def f(a: int, b: int = 10, /, c: int = 100) -> int:
        return a + b + c

    assert (await run_tool(f, {"a": 1})).content == "111"
    assert (await run_tool(f, {"a": 1, "b": 2, "c": 3})).content == "6"


async def test_timeout_async_and_sync() -> None:
    @function_tool(timeout=0.05)
    async def stuck() -> None:
        await asyncio.sleep(10)

    @function_tool(timeout=0.05)
    def blocking() -> None:
        time.sleep(0.3)

    for tool in (stuck, blocking):
        started = time.perf_counter()
        result = await run_tool(tool)
        assert result.is_error
        assert result.content == f"error: tool {tool.name!r} timed out after 0.05s"
        assert time.perf_counter() - started < 0.25


async def test_a_tools_own_timeout_error_is_not_our_timeout() -> None:
    @function_tool(timeout=5)
    async def http() -> None:
        raise TimeoutError("upstream took too long")

    result = await run_tool(http)
    assert result.content == "error: TimeoutError: upstream took too long"


# -- results --------------------------------------------------------------------------------------
class Opaque:
    def __str__(self) -> str:
        return "opaque!"


RESULTS: list[tuple[str, Any, str]] = [
    ("str", "as is", "as is"),
    ("None", None, "ok"),
    ("int", 3, "3"),
    ("bool", True, "true"),
    ("list", ["a", 1], '["a", 1]'),
    ("dict", {"é": 1}, '{"é": 1}'),
    ("dataclass", Slot("mon"), '{"day": "mon", "hour": 9}'),
    ("enum", Color.RED, "red"),
    (
        "nested non-JSON",
        {"at": dt.date(2025, 1, 2), "c": Color.BLUE},
        '{"at": "2025-01-02", "c": "blue"}',
    ),
    ("other", Opaque(), "opaque!"),
]


@pytest.mark.parametrize(
    ("value", "expected"), [r[1:] for r in RESULTS], ids=[r[0] for r in RESULTS]
)
def test_result_serialisation(value: Any, expected: str) -> None:
    assert format_result(value) == expected


async def test_long_results_are_truncated_with_a_marker() -> None:
    text = format_result("x" * 100_000)
    assert len(text) <= MAX_RESULT_CHARS
    assert text.endswith("more characters]")
    assert "…[truncated: " in text

    @function_tool
    def big() -> list[int]:
        return list(range(10_000))

    registry = ToolRegistry([big], max_result_chars=200)
    result = await run(registry, "big")
    assert len(result.content) <= 200 and "truncated" in result.content
    assert result.value == list(range(10_000))  # the Python value is intact


async def test_unprintable_result_is_an_error_result() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    @function_tool
    def f() -> Any:
        return Broken()

    result = await run_tool(f)
    assert (result.is_error, result.content) == (True, "error: RuntimeError: no")


async def test_context_factory_is_called_with_the_tool_call_id_only_when_needed() -> None:
    asked: list[str] = []

    @function_tool
    def with_ctx(c: RunContext) -> str:
        return c.tool_call_id

    def factory(tool_call_id: str) -> RunContext:
        asked.append(tool_call_id)
        return RunContext(call_id="c", tool_call_id=tool_call_id)

    registry = ToolRegistry([with_ctx])
    bad = await registry.execute(ToolCall("t1", "with_ctx", '{"x": 1}'), factory)
    good = await registry.execute(ToolCall("t2", "with_ctx", ""), factory)
    assert bad.is_error and good.content == "t2"
    assert asked == ["t2"]  # not for the call rejected before running


def test_tool_result_to_message() -> None:
    result = ToolResult(
        tool_call_id="t", name="f", content="ok", is_error=False, value=None, duration=0.1
    )
    message = result.to_message()
    assert (message.role, message.content, message.tool_call_id, message.name) == (
        "tool",
        "ok",
        "t",
        "f",
    )
    assert dataclasses.is_dataclass(result)


# -- property: nothing the model sends makes execute raise ------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
param_names = st.sampled_from(["date", "count", "slot", "tags", "color", "when", "extra", "x"])


@function_tool
def everything(
    date: str,
    count: int,
    slot: Slot,
    ctx: RunContext,
    tags: set[str] = frozenset(),  # type: ignore[assignment]
    color: Color = Color.RED,
    when: dt.date | None = None,
    extra: dict[str, tuple[int, str]] | None = None,
) -> str:
    return f"{date} {count} {slot} {sorted(tags)} {color} {when} {extra}"


# Mostly-right arguments too: fully random dicts almost never get past "is required".
near_valid = st.fixed_dictionaries(
    {
        "date": st.text(max_size=8) | json_values,
        "count": st.integers() | json_values,
        "slot": st.fixed_dictionaries(
            {"day": st.sampled_from(["mon", "tue", "wed"])}, optional={"hour": json_values}
        )
        | json_values,
    },
    optional={
        "tags": st.lists(st.text(max_size=3)) | json_values,
        "color": st.sampled_from(["red", "blue", "RED"]) | json_values,
        "when": st.sampled_from(["2025-01-02", "2025-13-01"]) | json_values,
        "extra": st.dictionaries(st.text(max_size=3), st.tuples(st.integers(), st.text()).map(list))
        | json_values,
        "zz": json_values,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arguments=near_valid
    | st.dictionaries(param_names | st.text(max_size=5), json_values, max_size=6)
)
async def test_random_json_arguments_never_make_execute_raise(arguments: dict[str, Any]) -> None:
    registry = ToolRegistry([everything])
    result = await run(registry, "everything", json.dumps(arguments))
    assert isinstance(result.content, str) and result.content
    assert result.is_error == result.content.startswith("error: ")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
async def test_random_argument_text_never_makes_execute_raise(text: str) -> None:
    result = await run(ToolRegistry([everything]), "everything", text)
    assert result.is_error
