"""Hypothesis strategies for protobuf messages, built from their descriptors (tests/fuzz).

`messages(descriptor)` fills any message recursively: strings (unicode, '..', paths, URLs,
empty, huge), integers at their type's bounds, doubles incl. NaN and infinities, enums incl.
values the schema doesn't know, repeated fields, at most one field of each oneof, maps, and
nested messages down to `max_depth`. `mutations(template)` merges a sparse random message into a
well-formed one, so most cases get past the first check and reach the later ones.
`loopback_only(message, url)` rewrites every http(s) URL whose host isn't `url`'s into `url`:
a fuzzed request never makes a service call anything but a closed loopback port.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: INT32, FieldDescriptor.TYPE_SINT32: INT32, FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64, FieldDescriptor.TYPE_SINT64: INT64, FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)

# Strings that have broken services before, or look like the paths, names, ids and URLs they parse.
SPECIAL_STRINGS = (
    "", " ", "\t\n", ".", "..", "../..", "../../etc/passwd", "/etc/passwd", "a/../b", "./x", "a//b", "~",
    "datasets/x.jsonl", "datasets/../x.jsonl", "datasets/missing.jsonl", "/abs/x.jsonl", "x.jsonl", "datasets\\x.jsonl",
    "adapters/x/eval.jsonl", "runs/x/config.json", "\x00", "a\x00b", "\r\n", "é", "🙂", "名前", "\u202e", "\ufeff",
    "\u0301", "CON", "NUL", "-", "-rf", "a b", "x" * 255, "x" * 256, "x" * 513, "x" * 20_001, "é" * 70_000,
    "%s%n%x", "{}", '{"a": 1}', "null", "[", "'", '"', "<script>", "$(id)", "0", "-1", "1e400", "nan",
    "0" * 32, "f" * 32, "run-1", "tiny-phi3", "org/name", "a/b/c", "models/../x", "fixed", "chat",
    "eval_loss", "eval_chrf", "mlflow", "tensorboard", "none", "cpu", "cuda", "cuda:99", "mps", "auto",
    "pairwise", "single", "q_proj", "all-linear", "Bearer x", "helpfulness", "UPPER_case",
)


def special_urls(closed: str) -> tuple[str, ...]:
    """URL shapes a validator should sort out; every one that could be dialled goes to `closed`."""
    host = urlsplit(closed).netloc
    return (
        closed, f"{closed}/v1", f"{closed}/v1/", f"{closed.replace('http:', 'https:')}/v1", f"{closed}/v1?x=1",
        f"{closed}/v1#frag", f"http://user:pw@{host}/v1", f"http://{host}:1/v1", "http://", "http://:0",
        "http://127.0.0.1:99999", "http://127.0.0.1:-1", "http://[::1", "ftp://127.0.0.1/x", "file:///etc/passwd",
        "127.0.0.1:8000", "//127.0.0.1", f" {closed}/v1 ", f"{closed}/v1\n", "javascript:alert(1)",
    )


def strings(closed_url: str) -> st.SearchStrategy[str]:
    unicode = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # surrogates can't be UTF-8
    return st.one_of(
        unicode,
        st.sampled_from(SPECIAL_STRINGS),
        st.sampled_from(special_urls(closed_url)),
        st.text("abcXYZ019-_./", min_size=1, max_size=30),
    )


def _integers(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    edges = [v for v in (0, 1, -1, 2, 3, 5, 8, 10, 100, 1000, 100_000, low, high, INT32[0], INT32[1], low + 1, high - 1)
             if low <= v <= high]
    return st.one_of(st.sampled_from(sorted(set(edges))), st.integers(low, high), st.integers(max(low, -3), 20))


def _floats(width: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from((0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 5.0, 1e-9, 1e308, -1e308, 5e-324, float("nan"),
                         float("inf"), float("-inf"))),
        st.floats(width=width),
        st.floats(-2, 10, width=width),
    )


def _enums(field: FieldDescriptor) -> st.SearchStrategy[int]:
    known = sorted(field.enum_type.values_by_number)
    return st.one_of(st.sampled_from(known), st.sampled_from((max(known) + 1, -1, *INT32)), st.integers(*INT32))


def _scalar(field: FieldDescriptor, text: st.SearchStrategy[str]) -> st.SearchStrategy:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enums(field)
    if kind in _FLOATS:
        return _floats(64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    return _integers(_INT_BOUNDS[kind])


class _Builder:
    def __init__(self, closed_url: str, max_depth: int, max_items: int):
        self.text = strings(closed_url)
        self.max_depth = max_depth
        self.max_items = max_items
        self.cache: dict[tuple[str, int, bool], st.SearchStrategy[Message]] = {}

    def value(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(field.message_type, depth + 1)
        return _scalar(field, self.text)

    def field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy:
        if _is_map(field):
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            return st.dictionaries(self.value(key, depth), self.value(value, depth), max_size=self.max_items)
        if field.is_repeated:
            return st.lists(self.value(field, depth), max_size=self.max_items)
        return self.value(field, depth)

    def message(self, descriptor: Descriptor, depth: int = 0, *, sparse: bool = False) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth, sparse)
        if key not in self.cache:  # built once: building strategies while drawing is what costs
            self.cache[key] = self._message(descriptor, depth, sparse)
        return self.cache[key]

    def _message(self, descriptor: Descriptor, depth: int, sparse: bool) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(descriptor)
        fields = [f for f in descriptor.fields
                  if depth < self.max_depth or f.type != FieldDescriptor.TYPE_MESSAGE]
        if not fields:
            return st.builds(cls)
        values = {f.name: self.field(f, depth) for f in fields}
        pick = st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True)

        @st.composite
        def build(draw) -> Message:
            message = cls()
            chosen = draw(pick) if sparse else [f for f in fields if draw(st.booleans())]
            oneofs_used: set[str] = set()
            for field in chosen:
                oneof = field.containing_oneof
                if oneof is not None and not getattr(oneof, "is_synthetic", False):
                    if oneof.name in oneofs_used:
                        continue  # one member of a oneof at a time; a later one would just replace it
                    oneofs_used.add(oneof.name)
                _set(message, field, draw(values[field.name]))
            return message

        return build()


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE and field.is_repeated
            and field.message_type.GetOptions().map_entry)


def _set(message: Message, field: FieldDescriptor, value) -> None:
    if _is_map(field):
        target = getattr(message, field.name)
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def messages(descriptor: Descriptor, *, closed_url: str, max_depth: int = 4,
             max_items: int = 4) -> st.SearchStrategy[Message]:
    """Any message of `descriptor`'s type (fields set or not at random, nested to `max_depth`)."""
    return _Builder(closed_url, max_depth, max_items).message(descriptor)


def mutations(template: Message, *, closed_url: str, max_depth: int = 4,
              max_items: int = 4) -> st.SearchStrategy[Message]:
    """`template` with one or two of its top-level fields replaced by (or merged with) random values."""
    builder = _Builder(closed_url, max_depth, max_items)

    def merged(patch: Message) -> Message:
        message = type(template)()
        message.CopyFrom(template)
        for field, _ in patch.ListFields():
            if not field.is_repeated and field.type != FieldDescriptor.TYPE_MESSAGE:
                continue  # MergeFrom overwrites these
            if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
                continue  # merged field by field, which keeps most of the template's nested message
            message.ClearField(field.name)  # repeated: replace rather than append
        message.MergeFrom(patch)
        return message

    return builder.message(template.DESCRIPTOR, sparse=True).map(merged)


def loopback_only(message: Message, closed_url: str) -> Message:
    """Rewrite, in place, every string that a client could dial to a host other than `closed_url`'s."""
    closed = urlsplit(closed_url)
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                items = value.values() if field.message_type.fields_by_name["value"].type == \
                    FieldDescriptor.TYPE_MESSAGE else ()
            else:
                items = value if field.is_repeated else (value,)
            for item in items:
                loopback_only(item, closed_url)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for i, item in enumerate(value):
                    value[i] = _safe_url(item, closed, closed_url)
            elif not _is_map(field):
                setattr(message, field.name, _safe_url(value, closed, closed_url))
    return message


def _safe_url(text: str, closed, closed_url: str) -> str:
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return text  # not parseable as a URL: no client dials it either
    if parts.scheme.lower() not in ("http", "https") or not host:
        return text
    if host == closed.hostname and port in (closed.port, 1):
        return text  # the closed port, or port 1 (nothing listens there)
    return closed_url
