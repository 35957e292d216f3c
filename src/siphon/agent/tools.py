"""Tools: Python functions the model may call during a phone call.

    @function_tool
    async def check_calendar(date: str, ctx: RunContext) -> list[str]:
        \"\"\"Look up free slots.

        Args:
            date: The day, as YYYY-MM-DD.
        \"\"\"

A ``FunctionTool`` stays the function it wraps (call it directly in unit tests) and
adds what the model needs: a name, a description (the docstring's first paragraph)
and a JSON schema of its parameters built from the type hints at decoration time, so
an unsupported annotation fails on import, not in the middle of a call.

``ToolRegistry`` is the runtime side: it hands the specs to the LLM and runs the
calls the model makes. ``execute`` never raises for anything the model or the tool
did wrong: bad JSON, a missing argument, an exception, a timeout all become an
error *result* whose text tells the model what to fix, because the caller is still
on the line and the conversation has to go on.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import datetime as dt
import enum
import functools
import inspect
import json
import logging
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import (
    Any,
    Generic,
    ParamSpec,
    TypeAlias,
    TypeVar,
    Union,
    get_args,
    get_origin,
    overload,
)

from siphon.agent.tool_schema import (
    ArgumentError,
    FieldSpec,
    ObjectNode,
    compile_type,
    object_schema,
    parse_docstring,
    resolve_hints,
    with_default,
)
from siphon.plugins.base import ChatMessage, ToolCall, ToolSpec

__all__ = [
    "MAX_RESULT_CHARS",
    "FunctionTool",
    "RunContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "Toolset",
    "format_result",
    "function_tool",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

MAX_RESULT_CHARS = 16 * 1024
"""Longest tool result sent back to the model. Every character stays in the context
for the rest of the call and is re-read on every turn: a tool that returns a whole
database page would slow each reply (time to first token) and cost tokens until the
caller hangs up, and may push the instructions out of a small model's window."""

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI and Anthropic both accept

_SYNC_TOOL_THREADS = 64
"""Worker threads shared by all sync tools of the process. Sync tools are mostly
blocking I/O (HTTP clients, database drivers), so threads mostly wait; they get their
own pool so a few slow or timed-out ones (a thread cannot be killed) never starve
the loop's default executor, which asyncio itself uses for DNS lookups."""
_executor: ThreadPoolExecutor | None = None


def _shared_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(_SYNC_TOOL_THREADS, thread_name_prefix="siphon-tool")
    return _executor


@dataclass(kw_only=True, slots=True)
class RunContext:
    """What a tool may know about the call it runs in; injected, never shown to the model.

    Ask for it by annotating any one parameter with ``RunContext``.
    """

    call_id: str
    tool_call_id: str  # the model's id of this invocation
    session: Any = None  # the per-call agent session (see ``siphon.agent.builtins.CallControl``)
    metadata: dict[str, Any] = field(default_factory=dict)  # the call's metadata
    userdata: dict[str, Any] = field(default_factory=dict)  # free for the application


class ToolError(Exception):
    """Raise from a tool to tell the model, in your words, why it failed.

    The message alone goes back to the model (no exception name, no traceback), e.g.
    ``raise ToolError("that slot was just taken; offer the caller another one")``.
    """


@dataclass(slots=True)  # not frozen: sessions type it with plain (settable) protocol members
class ToolResult:
    """One executed tool call."""

    tool_call_id: str
    name: str
    content: str  # what goes back to the model
    is_error: bool
    value: Any  # the Python return value; the exception if the tool raised; else None
    duration: float  # seconds, validation included

    def to_message(self) -> ChatMessage:
        """The ``tool`` message answering the call, for the chat history."""
        return ChatMessage(
            role="tool", content=self.content, tool_call_id=self.tool_call_id, name=self.name
        )


# -- FunctionTool ---------------------------------------------------------------------------
class _Unbound:
    """Marks a FunctionTool not (yet) bound to an instance or class."""


_UNBOUND = _Unbound()


@dataclass(frozen=True)
class _Signature:
    """The model-facing parameters of a tool and how to call the function with them."""

    arguments: ObjectNode  # checks and converts the model's arguments object
    positional_only: tuple[tuple[str, Any], ...]  # (name, default) of params before `/`
    context_param: str | None  # where the RunContext goes, if anywhere

    def bind(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = self.arguments.convert(arguments, "")
        # Parameters before `/` cannot be passed by name; a missing one (it has a
        # default, or conversion would have failed) gets its default explicitly.
        args = [kwargs.pop(name, default) for name, default in self.positional_only]
        return args, kwargs


class FunctionTool(Generic[P, R]):
    """A function the model may call. Still callable exactly like the function."""

    name: str
    description: str
    timeout: float | None

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        localns: Mapping[str, Any] | None = None,
    ) -> None:
        raw, self._kind = _unwrap(fn)
        functools.update_wrapper(self, raw)  # first: raw's __dict__ must not clobber ours
        self._fn: Callable[..., Any] = raw
        self._bound_to: object = _UNBOUND
        self.name = name if name is not None else raw.__name__
        where = f"tool {self.name!r} ({_qualname(raw)})"
        if not _TOOL_NAME.match(self.name):
            raise ValueError(
                f"{where}: tool names must be 1-64 letters, digits, '_' or '-'; "
                "pass function_tool(name=...)"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"{where}: timeout must be a positive number of seconds")
        if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
            raise TypeError(f"{where}: generator functions cannot be tools; return a value")
        self.timeout = timeout
        doc = parse_docstring(raw.__doc__)
        self.description = description if description is not None else doc.summary
        self._signature = _build_signature(raw, self._kind, doc.params, where, localns)
        self.is_async = inspect.iscoroutinefunction(raw)

    # -- the function side --
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._call(*args, **kwargs)
        return result

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self._bound_to is _UNBOUND:
            return self._fn(*args, **kwargs)
        return self._fn(self._bound_to, *args, **kwargs)

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> FunctionTool[P, R]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> FunctionTool[..., R]: ...
    def __get__(self, instance: object, owner: type | None = None) -> FunctionTool[..., R]:
        """Bind like a function does: ``calendar.free_slots`` is a tool without ``self``."""
        if self._bound_to is not _UNBOUND:
            return self
        if self._kind == "classmethod":
            target: object = owner if owner is not None else type(instance)
        elif self._kind == "method" and instance is not None:
            target = instance
        else:
            return self  # a module-level tool stored on a class stays as it is
        bound = copy.copy(self)
        bound._bound_to = target
        return bound

    # -- the model side --
    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments object."""
        return self._signature.arguments.schema

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    @property
    def context_param(self) -> str | None:
        """The parameter that receives the RunContext, if any."""
        return self._signature.context_param

    @property
    def needs_context(self) -> bool:
        return self.context_param is not None

    @property
    def needs_binding(self) -> bool:
        """A method taken from the class: it needs an instance before the model can call it."""
        return self._kind == "method" and self._bound_to is _UNBOUND

    def __repr__(self) -> str:
        return f"<FunctionTool {self.name!r} of {_qualname(self._fn)}>"

    def _bind(self, call: ToolCall) -> tuple[list[Any], dict[str, Any]]:
        """The call's arguments, checked and converted to what the function takes.

        Raises ``ValueError`` (bad JSON) or ``ArgumentError``, with text for the model.
        """
        return self._signature.bind(call.parsed_arguments())

    async def _run(self, args: list[Any], kwargs: dict[str, Any], executor: Executor) -> Any:
        if self.is_async:
            result = await self._call(*args, **kwargs)
        else:
            # Never on the event loop: it carries every other call's audio. The context
            # copy keeps contextvars (log correlation, tracing) visible in the thread.
            run = functools.partial(contextvars.copy_context().run, self._call, *args, **kwargs)
            result = await asyncio.get_running_loop().run_in_executor(executor, run)
        if inspect.isawaitable(result):  # a sync wrapper returning a coroutine
            result = await result
        return result


def _unwrap(fn: Any) -> tuple[Callable[..., Any], str]:
    """The plain function behind ``fn`` and how it binds: function, method, classmethod."""
    if isinstance(fn, staticmethod):
        return fn.__func__, "function"
    if isinstance(fn, classmethod):
        return fn.__func__, "classmethod"
    if isinstance(fn, FunctionTool):
        raise TypeError(f"{fn!r} is already a tool")
    if inspect.ismethod(fn):  # already bound (obj.method): self is taken care of
        return fn, "function"
    if inspect.isfunction(fn):
        return fn, "method" if _defined_in_class(fn) else "function"
    if isinstance(fn, type) or not callable(fn):
        raise TypeError(f"{fn!r} is not a function; tools are functions or methods")
    raise TypeError(
        f"{fn!r} is not a plain function; wrap it in a def (callable objects and "
        "functools.partial have no type hints to describe to the model)"
    )


def _defined_in_class(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a method being decorated inside a class body.

    At decoration time the class does not exist yet; the qualified name says where
    the def is (``Calendar.free_slots``, not ``make.<locals>.free_slots``). A first
    parameter with no annotation or named self confirms it: a staticmethod decorated
    from the outside has an annotated first parameter the model must fill.
    """
    parts = fn.__qualname__.split(".")
    if len(parts) < 2 or parts[-2] == "<locals>":
        return False
    first = next(iter(inspect.signature(fn).parameters.values()), None)
    if first is None or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD):
        return False
    return first.name in ("self", "cls") or first.annotation is first.empty


def _build_signature(
    fn: Callable[..., Any],
    kind: str,
    param_docs: dict[str, str],
    where: str,
    localns: Mapping[str, Any] | None,
) -> _Signature:
    hints = resolve_hints(fn, localns, owner=where)
    params = list(inspect.signature(fn).parameters.values())
    if kind in ("method", "classmethod"):
        params = params[1:]  # self / cls
    fields: dict[str, FieldSpec] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    positional_only: list[tuple[str, Any]] = []
    context_param: str | None = None
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: *args and **kwargs cannot be described to the model")
        if param.name not in hints:
            raise TypeError(
                f"{where}: parameter '{param.name}' has no type annotation; the model needs "
                f"one to know what to send (e.g. `{param.name}: str`)"
            )
        hint = hints[param.name]
        if _is_context(hint):
            if context_param is not None:
                raise TypeError(f"{where}: only one parameter can take the RunContext")
            context_param = param.name
            continue
        node = compile_type(hint, owner=where, path=param.name, localns=localns)
        if "description" not in node.schema and param.name in param_docs:
            node = dataclasses.replace(
                node, schema={**node.schema, "description": param_docs[param.name]}
            )
        is_required = param.default is param.empty
        fields[param.name] = FieldSpec(node=node, required=is_required)
        properties[param.name] = with_default(node.schema, param.default)
        if is_required:
            required.append(param.name)
        if param.kind is param.POSITIONAL_ONLY:
            positional_only.append((param.name, param.default))
    arguments = ObjectNode(
        schema=object_schema(properties, required),
        expected="an object of named arguments",
        kinds=frozenset({"object"}),
        fields=fields,
        build=lambda members: members,
    )
    return _Signature(arguments, tuple(positional_only), context_param)


def _is_context(hint: Any) -> bool:
    """``RunContext`` (or a subclass), also inside ``Annotated`` or ``X | None``."""
    if get_origin(hint) is not None and hasattr(hint, "__metadata__"):  # Annotated
        return _is_context(get_args(hint)[0])
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        return len(members) == 1 and _is_context(members[0])
    return isinstance(hint, type) and issubclass(hint, RunContext)


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{name}" if module else name


# -- the decorator --------------------------------------------------------------------------
@overload
def function_tool(fn: Callable[P, R], /) -> FunctionTool[P, R]: ...
@overload
def function_tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...
def function_tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Make ``fn`` a tool the model can call; bare or as ``@function_tool(name=...)``.

    ``name`` defaults to the function's name, ``description`` to its docstring's first
    paragraph. ``timeout`` (seconds) bounds each call; the model is told it timed out.
    Raises ``TypeError`` right away for a parameter type the model cannot be told about.
    """
    # The decorating scope, for hints naming classes local to it (see resolve_hints).
    # Taken now: both forms of the decorator are called from that scope.
    localns = dict(sys._getframe(1).f_locals)

    def decorate(func: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            func, name=name, description=description, timeout=timeout, localns=localns
        )

    return decorate if fn is None else decorate(fn)


# -- Toolset --------------------------------------------------------------------------------
class Toolset:
    """A class grouping tools that share state (a client, a database handle).

    class Calendar(Toolset):
        def __init__(self, db): self.db = db

        @function_tool
        async def free_slots(self, day: Literal["mon", "tue"]) -> list[str]: ...

    Passing ``Calendar(db)`` to an Agent registers every tool method, inherited ones too.
    """

    def tools(self) -> list[FunctionTool[..., Any]]:
        """This instance's tools, bound, in definition order (base classes first)."""
        members: dict[str, Any] = {}
        for klass in reversed(type(self).__mro__):
            members.update(vars(klass))  # a subclass's attribute overrides, in place
        return [getattr(self, name) for name, member in members.items() if _is_tool(member)]


def _is_tool(member: Any) -> bool:
    if isinstance(member, staticmethod):  # @staticmethod above @function_tool
        member = member.__func__
    return isinstance(member, FunctionTool)


# -- results ----------------------------------------------------------------------------------
def format_result(value: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """The text the model gets for a tool's return value, at most ``limit`` characters."""
    if isinstance(value, enum.Enum):  # before str/int: StrEnum and IntEnum are both
        text = str(value.value)
    elif isinstance(value, str):
        text = value
    elif value is None:
        text = "ok"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        text = _dumps(dataclasses.asdict(value))
    elif isinstance(value, dict | list | tuple | int | float | bool):
        try:
            text = _dumps(value)
        except (TypeError, ValueError):  # non-string keys json cannot coerce, cycles
            text = str(value)
    else:
        text = str(value)
    return truncate(text, limit)


def truncate(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut.

    The marker matters: without it the model presents a partial list as complete.
    """
    if len(text) <= limit:
        return text

    def marker(omitted: int) -> str:
        return f"\n…[truncated: {omitted} more characters]"

    keep = max(limit - len(marker(len(text))), 0)  # the longest marker it can need
    return text[:keep] + marker(len(text) - keep)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_fallback)


def _json_fallback(value: Any) -> Any:
    """JSON for the common non-JSON types inside a result: dates, enums, sets, dataclasses."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


# -- the registry ------------------------------------------------------------------------------
ToolLike: TypeAlias = "FunctionTool[..., Any] | Toolset | Callable[..., Any]"


class ToolRegistry:
    """The tools of one agent: their specs for the LLM, and the runner of its calls."""

    def __init__(
        self,
        items: Iterable[ToolLike] = (),
        *,
        max_result_chars: int = MAX_RESULT_CHARS,
        executor: Executor | None = None,  # for sync tools; default: a shared pool
    ) -> None:
        self._tools: dict[str, FunctionTool[..., Any]] = {}
        self._max_chars = max_result_chars
        self._executor = executor
        for item in items:
            for tool in _expand(item):
                self._add(tool)

    def _add(self, tool: FunctionTool[..., Any]) -> None:
        existing = self._tools.get(tool.name)
        if existing is not None:
            raise ValueError(
                f"two tools are named {tool.name!r}: {existing!r} and {tool!r}; "
                "rename one with function_tool(name=...)"
            )
        self._tools[tool.name] = tool

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> FunctionTool[..., Any] | None:
        return self._tools.get(name)

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[FunctionTool[..., Any]]:
        return iter(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def execute(
        self, call: ToolCall, context_factory: Callable[[str], RunContext]
    ) -> ToolResult:
        """Run one tool call; every failure becomes an error result, never an exception.

        ``context_factory(tool_call_id)`` builds the RunContext, only for tools that
        take one. Cancellation still propagates (the call is being torn down), and so
        does an exception from ``context_factory`` itself: that is a framework bug.
        """
        started = time.perf_counter()

        def result(content: str, *, is_error: bool, value: Any = None) -> ToolResult:
            return ToolResult(
                tool_call_id=call.id,
                name=call.name,
                content=truncate(content, self._max_chars),
                is_error=is_error,
                value=value,
                duration=time.perf_counter() - started,
            )

        tool = self._tools.get(call.name)
        if tool is None:
            available = ", ".join(self._tools) or "none"
            return result(
                f"error: unknown tool {call.name!r}. Available tools: {available}", is_error=True
            )
        try:
            args, kwargs = tool._bind(call)
        except (ValueError, ArgumentError, RecursionError) as exc:  # RecursionError: [[[[...
            logger.info("tool %s: bad arguments from the model: %s", tool.name, exc)
            return result(f"error: {exc}", is_error=True)
        if tool.context_param is not None:
            kwargs[tool.context_param] = context_factory(call.id)
        # A sync tool that times out keeps its worker thread until it returns (threads
        # cannot be killed); the model is answered at the deadline all the same.
        deadline = asyncio.timeout(tool.timeout)  # None: no deadline
        try:
            async with deadline:
                value = await tool._run(args, kwargs, self._executor or _shared_executor())
        except ToolError as exc:
            logger.info("tool %s: %s", tool.name, exc)
            return result(str(exc) or "error", is_error=True, value=exc)
        except TimeoutError as exc:
            if not deadline.expired():  # the tool's own TimeoutError (an HTTP client's...)
                return self._failed(tool, exc, result)
            logger.warning("tool %s timed out after %gs", tool.name, tool.timeout)
            return result(
                f"error: tool {tool.name!r} timed out after {tool.timeout:g}s",
                is_error=True,
                value=exc,
            )
        except Exception as exc:
            return self._failed(tool, exc, result)
        try:
            content = format_result(value, self._max_chars)
        except Exception as exc:  # a __str__ that raises, a dataclass asdict cannot copy
            return self._failed(tool, exc, result)
        return result(content, is_error=False, value=value)

    @staticmethod
    def _failed(
        tool: FunctionTool[..., Any], exc: Exception, result: Callable[..., ToolResult]
    ) -> ToolResult:
        # The developer wants the traceback; the model only a line it can act on.
        logger.error("tool %s raised %s", tool.name, type(exc).__name__, exc_info=exc)
        text = str(exc)
        content = f"error: {type(exc).__name__}: {text}" if text else f"error: {type(exc).__name__}"
        return result(content, is_error=True, value=exc)


def _expand(item: Any) -> list[FunctionTool[..., Any]]:
    """The tools behind one entry of ``Agent(tools=[...])``."""
    if isinstance(item, Toolset):
        return item.tools()
    if isinstance(item, type):
        raise TypeError(f"{item.__qualname__} is a class; pass an instance: {item.__name__}(...)")
    if not isinstance(item, FunctionTool):
        if not callable(item):
            raise TypeError(f"{item!r} is not a tool, a Toolset or a function")
        item = FunctionTool(item)  # a plain function: as if decorated
    if item.needs_binding:
        raise TypeError(
            f"{item!r} is a method taken from its class; pass an instance "
            "(or the instance's method) instead"
        )
    return [item]
