"""Type hints -> JSON schema, and the model's JSON arguments -> Python values.

One annotation compiles to one ``Node``. A node carries both halves of the contract
with the model: the ``schema`` it is shown (a JSON schema subset that OpenAI,
Anthropic and Gemini all accept) and ``convert``, which checks the JSON value the
model actually sent against that same shape and builds the Python value the tool
expects (an ``Enum`` member, a dataclass, a ``set``...). Keeping both in one object
means the schema the model sees and the checks it is held to cannot drift apart.

Conversion is strict (``"3"`` is not an integer) but every refusal is a sentence the
model can act on: ``argument 'slot.day' must be one of "mon", "tue", got string "wed"``.
The only leniencies are lossless ones models commonly need: an integer where a number
is expected, an integral float (``3.0``) where an integer is expected, and ``null``
for an optional argument meaning "use the default".

Also here: the Google-style docstring parser that supplies descriptions.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "SUPPORTED_TYPES",
    "ArgumentError",
    "Docstring",
    "FieldSpec",
    "Node",
    "ObjectNode",
    "compile_type",
    "json_default",
    "parse_docstring",
    "resolve_hints",
]

SUPPORTED_TYPES = (
    "str, int, float, bool, None, X | None (Optional), list[X], tuple[X, ...], "
    "tuple[X, Y], set[X], dict[str, X], Literal[...], Enum subclasses, dataclasses, "
    "TypedDict, datetime/date/time, Any, Annotated[T, 'description']"
)

_ALL_KINDS = frozenset({"string", "integer", "number", "boolean", "null", "array", "object"})


class ArgumentError(Exception):
    """The model's arguments do not fit the tool; ``problems`` are sentences for it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# -- nodes ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Node(abc.ABC):
    """A compiled annotation: what the model is shown and how its answer is checked."""

    schema: dict[str, Any]
    expected: str  # for error messages: "a string", "an array of integers"...
    kinds: frozenset[str]  # JSON kinds this node can accept (picks the useful union error)

    @abc.abstractmethod
    def convert(self, value: Any, path: str) -> Any:
        """The Python value for the model's JSON ``value``; raises ArgumentError."""

    def reject(self, value: Any, path: str) -> ArgumentError:
        return ArgumentError([f"argument '{path}' must be {self.expected}, got {_show(value)}"])


@dataclass(frozen=True, eq=False)
class AnyNode(Node):
    def convert(self, value: Any, path: str) -> Any:
        return value


@dataclass(frozen=True, eq=False)
class ScalarNode(Node):
    py: type  # str, int, float, bool or NoneType

    def convert(self, value: Any, path: str) -> Any:
        kind = _json_kind(value)
        if self.py is float and kind in ("integer", "number"):
            try:
                return float(value)
            except OverflowError:  # an integer too large for a float (10**400)
                raise self.reject(value, path) from None
        if self.py is int and kind == "number" and float(value).is_integer():
            return int(value)  # 3.0 is a fine way to write 3
        if kind in self.kinds:
            return value
        raise self.reject(value, path)


@dataclass(frozen=True, eq=False)
class TemporalNode(Node):
    py: type[dt.date] | type[dt.time]  # datetime is a date subclass: both parse from ISO 8601

    def convert(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            try:
                return self.py.fromisoformat(value)
            except ValueError:
                pass
        raise self.reject(value, path)


@dataclass(frozen=True, eq=False)
class ChoiceNode(Node):
    """Literal[...] and Enum: a fixed set of JSON values, each mapped to a Python value."""

    choices: tuple[tuple[Any, Any], ...]  # (JSON value, Python value)

    def convert(self, value: Any, path: str) -> Any:
        for json_value, py_value in self.choices:
            # type() too: True == 1 in Python, but not to the model or the schema
            if type(value) is type(json_value) and value == json_value:
                return py_value
        raise self.reject(value, path)


@dataclass(frozen=True, eq=False)
class ArrayNode(Node):
    item: Node
    container: Callable[[list[Any]], Any]  # list, set, frozenset or tuple

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise self.reject(value, path)
        items, problems = [], []
        for i, item in enumerate(value):
            try:
                items.append(self.item.convert(item, f"{path}[{i}]"))
            except ArgumentError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ArgumentError(problems)
        try:
            return self.container(items)
        except TypeError:  # unhashable items for a set: say so rather than crash
            raise self.reject(value, path) from None


@dataclass(frozen=True, eq=False)
class TupleNode(Node):
    items: tuple[Node, ...]

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, list) or len(value) != len(self.items):
            raise self.reject(value, path)
        out, problems = [], []
        for i, (node, item) in enumerate(zip(self.items, value, strict=True)):
            try:
                out.append(node.convert(item, f"{path}[{i}]"))
            except ArgumentError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ArgumentError(problems)
        return tuple(out)


@dataclass(frozen=True, eq=False)
class MapNode(Node):
    value: Node

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise self.reject(value, path)
        out, problems = {}, []
        for key, item in value.items():
            try:
                out[key] = self.value.convert(item, _join(path, key))
            except ArgumentError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ArgumentError(problems)
        return out


@dataclass(frozen=True, eq=False)
class UnionNode(Node):
    options: tuple[Node, ...]

    def convert(self, value: Any, path: str) -> Any:
        failures: list[tuple[Node, ArgumentError]] = []
        for option in self.options:  # declaration order: int | float keeps 3 an int
            try:
                return option.convert(value, path)
            except ArgumentError as exc:
                failures.append((option, exc))
        # When exactly one option has the value's JSON shape (an object for `Slot | None`),
        # its detailed complaint ("'slot.day' is required") beats "must be X or null".
        kind = _json_kind(value)
        shaped = [exc for option, exc in failures if kind in option.kinds]
        if len(shaped) == 1:
            raise shaped[0]
        raise self.reject(value, path)


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One named member of an object: a tool parameter or a dataclass/TypedDict field."""

    node: Node
    required: bool


@dataclass(frozen=True, eq=False)
class ObjectNode(Node):
    """A JSON object with known keys: the tool's arguments, a dataclass, a TypedDict."""

    fields: Mapping[str, FieldSpec]
    build: Callable[[dict[str, Any]], Any]  # the converted members -> the Python value

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise self.reject(value, path)
        problems = [self._unknown(key, path) for key in value if key not in self.fields]
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            where = _join(path, name)
            if name not in value:
                if spec.required:
                    problems.append(f"argument '{where}' is required")
                continue
            item = value[name]
            if item is None and not spec.required and "null" not in spec.node.kinds:
                # Models (OpenAI strict mode above all) send null for "not given": the
                # default it stands for is what the tool author wants in that case.
                continue
            try:
                out[name] = spec.node.convert(item, where)
            except ArgumentError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ArgumentError(problems)
        try:
            return self.build(out)
        except Exception as exc:  # e.g. a dataclass __post_init__ rejecting the value
            raise ArgumentError([f"argument '{path}' is invalid: {_describe_exc(exc)}"]) from None

    def _unknown(self, key: str, path: str) -> str:
        where = _join(path, _clip(key))
        if not self.fields:
            return f"unknown argument '{where}' (this takes no arguments)"
        return f"unknown argument '{where}' (expected: {', '.join(self.fields)})"


# -- compiling annotations ----------------------------------------------------------------
@dataclass(frozen=True)
class _Where:
    """Where we are in the compilation, for TypeErrors that point at the culprit."""

    owner: str  # the function's qualified name
    path: str  # "slot.day"
    localns: Mapping[str, Any] | None  # the decorating scope, for local classes
    stack: tuple[type, ...] = ()  # classes being compiled: recursion is not supported

    def at(self, name: str) -> _Where:
        return dataclasses.replace(self, path=_join(self.path, name))

    def unsupported(self, tp: Any, why: str = "") -> TypeError:
        detail = f" ({why})" if why else ""
        return TypeError(
            f"{self.owner}: parameter '{self.path}' has unsupported type "
            f"{_type_name(tp)}{detail}. Supported types: {SUPPORTED_TYPES}"
        )


def compile_type(
    tp: Any, *, owner: str, path: str, localns: Mapping[str, Any] | None = None
) -> Node:
    """Compile one resolved annotation; ``TypeError`` naming owner and path if unsupported."""
    return _compile(tp, _Where(owner, path, localns))


_SCALARS: dict[Any, tuple[str, str]] = {
    str: ("string", "a string"),
    int: ("integer", "an integer"),
    float: ("number", "a number"),
    bool: ("boolean", "a boolean"),
    type(None): ("null", "null"),
    None: ("null", "null"),
}
_TEMPORAL: dict[type, tuple[str, str]] = {
    dt.datetime: ("date-time", "an ISO 8601 date-time string (2024-05-01T14:30:00)"),
    dt.date: ("date", "an ISO 8601 date string (2024-05-01)"),
    dt.time: ("time", "an ISO 8601 time string (14:30:00)"),
}
_LISTS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    Sequence: list,
    MutableSequence: list,
    set: set,
    MutableSet: set,
    frozenset: frozenset,
    AbstractSet: frozenset,
}
_MAPS = (dict, Mapping, typing.MutableMapping)


def _among(tp: Any, table: Mapping[Any, Any] | tuple[Any, ...]) -> bool:
    """``tp in table``, for annotations that may be unhashable (a stray ``[int]``)."""
    try:
        return tp in table
    except TypeError:
        return False


def _compile(tp: Any, where: _Where) -> Node:
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        return _describe(_compile(args[0], where), _annotated_description(tp.__metadata__))
    if origin in (typing.Required, typing.NotRequired):  # TypedDict markers
        return _compile(args[0], where)
    if isinstance(tp, typing.NewType):
        return _compile(tp.__supertype__, where)
    if tp is Any or tp is object:
        return AnyNode(schema={}, expected="any JSON value", kinds=_ALL_KINDS)
    if _among(tp, _SCALARS):
        kind, expected = _SCALARS[tp]
        py = type(None) if tp is None else tp
        kinds = frozenset({kind, "integer"}) if py is float else frozenset({kind})
        return ScalarNode(schema={"type": kind}, expected=expected, kinds=kinds, py=py)
    if _among(tp, _TEMPORAL):
        fmt, expected = _TEMPORAL[tp]
        schema = {"type": "string", "format": fmt}
        return TemporalNode(schema=schema, expected=expected, kinds=frozenset({"string"}), py=tp)
    if origin in (Union, types.UnionType):
        return _union([_compile(arg, where) for arg in args])
    if origin is Literal:
        return _choices([(_literal_json(v, tp, where), v) for v in args])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _choices([(_literal_json(m.value, tp, where), m) for m in tp])
    if _among(tp, _LISTS) or _among(origin, _LISTS):
        return _array(_LISTS[origin or tp], args[0] if args else Any, where, bare=not args)
    if tp is tuple or origin is tuple:
        return _tuple(args, where)
    if _among(tp, _MAPS) or _among(origin, _MAPS):
        return _map(tp, args, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, where)
    if isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__"):
        return _typeddict(tp, where)
    raise where.unsupported(tp)


def _describe(node: Node, description: str | None) -> Node:
    if not description:
        return node
    return dataclasses.replace(node, schema={**node.schema, "description": description})


def _annotated_description(metadata: Sequence[Any]) -> str | None:
    """``Annotated[T, "text"]`` or ``Annotated[T, Field(description=...)]`` (pydantic-like)."""
    for item in metadata:
        if isinstance(item, str):
            return item
        description = getattr(item, "description", None)
        if isinstance(description, str):
            return description
    return None


def _union(options: list[Node]) -> Node:
    expected = " or ".join(o.expected for o in options)
    kinds = frozenset().union(*(o.kinds for o in options))
    schema = {"anyOf": [o.schema for o in options]}
    return UnionNode(schema=schema, expected=expected, kinds=kinds, options=tuple(options))


def _literal_json(value: Any, tp: Any, where: _Where) -> Any:
    """The JSON form of one Literal value or Enum member value."""
    if isinstance(value, enum.Enum):  # Literal[Color.RED]
        value = value.value
    if value is None:
        return None
    for base in (bool, int, float, str):  # bool first: it is an int too
        if isinstance(value, base):
            return base(value)  # a str/int subclass instance becomes the plain value
    raise where.unsupported(tp, f"value {value!r} is not a JSON string, number or boolean")


def _choices(choices: list[tuple[Any, Any]]) -> Node:
    values = [json_value for json_value, _ in choices]
    kinds = frozenset(_json_kind(v) for v in values)
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": next(iter(kinds)), **schema}
    expected = "one of " + ", ".join(json.dumps(v) for v in values)
    if kinds == {"integer"}:
        kinds = frozenset({"integer", "number"})
    return ChoiceNode(schema=schema, expected=expected, kinds=kinds, choices=tuple(choices))


def _array(
    container: Callable[[list[Any]], Any], item_tp: Any, where: _Where, *, bare: bool = False
) -> Node:
    item = _compile(item_tp, where.at("[]"))
    schema: dict[str, Any] = {"type": "array", "items": item.schema}
    if container in (set, frozenset):
        schema["uniqueItems"] = True
    expected = "an array" if bare else f"an array of {_plural(item.expected)}"
    kinds = frozenset({"array"})
    return ArrayNode(schema=schema, expected=expected, kinds=kinds, item=item, container=container)


def _tuple(args: tuple[Any, ...], where: _Where) -> Node:
    if not args:
        return _array(tuple, Any, where, bare=True)
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
        return _array(tuple, args[0], where)
    if args == ((),):  # tuple[()]: the empty tuple
        args = ()
    items = tuple(_compile(arg, where.at(f"[{i}]")) for i, arg in enumerate(args))
    schema = {
        "type": "array",
        "prefixItems": [node.schema for node in items],
        "minItems": len(items),
        "maxItems": len(items),
    }
    expected = f"an array of exactly {len(items)} items ({', '.join(n.expected for n in items)})"
    return TupleNode(schema=schema, expected=expected, kinds=frozenset({"array"}), items=items)


def _map(tp: Any, args: tuple[Any, ...], where: _Where) -> Node:
    if args and args[0] is not str:
        raise where.unsupported(tp, "JSON object keys are strings: use dict[str, ...]")
    value = _compile(args[1], where.at("*")) if args else _compile(Any, where)
    schema = {"type": "object", "additionalProperties": value.schema}
    if not args:
        schema = {"type": "object"}
    expected = f"an object of {_plural(value.expected)}" if args else "an object"
    return MapNode(schema=schema, expected=expected, kinds=frozenset({"object"}), value=value)


def _dataclass(cls: type, where: _Where) -> Node:
    members = [f for f in dataclasses.fields(cls) if f.init]
    hints = _class_hints(cls, where)
    required = {
        f.name
        for f in members
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    defaults = {f.name: f.default for f in members if f.default is not dataclasses.MISSING}
    return _object(cls, [f.name for f in members], hints, required, defaults, cls, where)


def _typeddict(cls: type, where: _Where) -> Node:
    hints = _class_hints(cls, where)
    # The resolved hint has the last word: under `from __future__ import annotations`
    # Python 3.11 computes __required_keys__ from strings and misses NotRequired[...].
    declared = set(getattr(cls, "__required_keys__", ()))
    required = {
        name
        for name, hint in hints.items()
        if get_origin(hint) is typing.Required
        or (name in declared and get_origin(hint) is not typing.NotRequired)
    }
    return _object(cls, list(hints), hints, required, {}, dict, where)


def _class_hints(cls: type, where: _Where) -> dict[str, Any]:
    if cls in where.stack:
        raise where.unsupported(cls, "recursive types cannot be described to the model")
    return resolve_hints(cls, where.localns, owner=where.owner)


def _object(
    cls: type,
    names: list[str],
    hints: dict[str, Any],
    required: set[str],
    defaults: dict[str, Any],
    build: Callable[..., Any],
    where: _Where,
) -> Node:
    inner = dataclasses.replace(where, stack=(*where.stack, cls))
    doc = parse_docstring(_own_docstring(cls))
    fields: dict[str, FieldSpec] = {}
    properties: dict[str, Any] = {}
    for name in names:
        node = _compile(hints[name], inner.at(name))
        if "description" not in node.schema:
            node = _describe(node, doc.params.get(name))
        fields[name] = FieldSpec(node=node, required=name in required)
        properties[name] = with_default(node.schema, defaults.get(name, dataclasses.MISSING))
    schema = object_schema(properties, [n for n in names if n in required], doc.summary)
    return ObjectNode(
        schema=schema,
        expected=f"an object ({cls.__name__})",
        kinds=frozenset({"object"}),
        fields=fields,
        build=lambda members: build(**members),
    )


def object_schema(
    properties: dict[str, Any], required: list[str], description: str = ""
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def with_default(schema: dict[str, Any], default: Any) -> dict[str, Any]:
    """``schema`` plus ``"default"`` when the Python default has a JSON form."""
    if default is dataclasses.MISSING or default is inspect.Parameter.empty:
        return schema
    ok, value = json_default(default)
    return {**schema, "default": value} if ok else schema


def json_default(value: Any) -> tuple[bool, Any]:
    """(True, JSON form) of a default value, or (False, None) when it has none."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple | frozenset | set):
        value = list(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False, None
    return True, value


def _own_docstring(cls: type) -> str | None:
    doc = cls.__doc__
    # dataclasses invent "Slot(day: str, time: str)" when there is none: not a description
    if doc is None or doc.startswith(f"{cls.__name__}("):
        return None
    return doc


def resolve_hints(obj: Any, localns: Mapping[str, Any] | None, *, owner: str) -> dict[str, Any]:
    """``get_type_hints`` that also sees classes local to the decorating scope.

    Under ``from __future__ import annotations`` every hint is a string evaluated
    against the module's globals, so a class defined inside a function (a test, a
    factory) cannot be found. We retry with the decorating scope's locals; only on
    failure, so a local variable never shadows a module-level name that resolves.
    """
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except NameError as first:
        if localns is None:
            raise _unresolved(owner, first) from None
        try:
            return typing.get_type_hints(obj, localns=dict(localns), include_extras=True)
        except NameError as exc:
            raise _unresolved(owner, exc) from None


def _unresolved(owner: str, exc: NameError) -> TypeError:
    return TypeError(
        f"{owner}: cannot resolve its type hints ({exc}). Tool parameter types must be "
        "importable at runtime, not only under `if TYPE_CHECKING:`"
    )


# -- docstrings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Docstring:
    summary: str  # the first paragraph, on one line
    params: dict[str, str]  # from Args:/Arguments:/Parameters:/Attributes: sections


_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_PARAM_SECTIONS = {"args", "arguments", "parameters", "params", "attributes", "keyword args"}
_ENTRY = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:(?P<desc>.*)$")


def parse_docstring(doc: str | None) -> Docstring:
    """Parse a Google-style docstring: summary paragraph and ``Args:`` entries.

    Entries are ``name: text`` or ``name (type): text``; lines indented deeper than
    the entry continue its text.
    """
    if not doc:
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    for header, body in _sections(lines):
        if header.lower() in _PARAM_SECTIONS:
            params.update(_entries(body))
    return Docstring(" ".join(summary), params)


def _sections(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """(header, indented body lines) of each top-level ``Header:`` section."""
    i = 0
    while i < len(lines):
        match = _SECTION.match(lines[i])
        i += 1
        if not match:
            continue
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > 0):
            body.append(lines[i])
            i += 1
        yield match.group(1).strip(), body


def _entries(body: list[str]) -> dict[str, str]:
    indents = [_indent(line) for line in body if line.strip()]
    if not indents:
        return {}
    entry_indent = min(indents)
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in body:
        if not line.strip():
            continue
        match = _ENTRY.match(line.strip()) if _indent(line) == entry_indent else None
        if match:
            current = entries.setdefault(match.group("name"), [])
            current.append(match.group("desc").strip())
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in entries.items()}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# -- small helpers -------------------------------------------------------------------------
def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    kind = _json_kind(value)
    if kind == "null":
        return "null"
    if kind in ("array", "object"):
        return f"an {kind}"
    text = json.dumps(value, ensure_ascii=False)
    return f"{kind} {_clip(text)}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(expected: str) -> str:
    """'a string' -> 'strings', for "an array of strings"; other phrasings kept as is."""
    for article in ("an ", "a "):
        if expected.startswith(article) and " " not in expected[len(article) :]:
            return expected[len(article) :] + "s"
    return f"items that are {expected}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _describe_exc(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
