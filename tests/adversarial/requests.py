"""Hypothesis strategies for any protobuf request message, built from its descriptor: each field
is left unset or gets a random or boundary value of its type (empty, huge and NUL strings, ids
that exist, forged page tokens, unknown enum numbers, extreme integers, out-of-range times)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Final

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st
from timestep.api.validation import is_map, is_timestamp
from timestep.settings import MAX_ID_LENGTH, MAX_SCHEDULE_INPUT_BYTES, Limits

LIMITS: Final = Limits()
INT32: Final = (0, 1, -1, 499, 500, 501, 2**31 - 1, -(2**31))
INT64: Final = (*INT32, 10**12, 2**63 - 1, -(2**63))
# Around what a Timestamp may hold (years 1 to 9999), and far past it.
SECONDS: Final = (0, -62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800, 10**12, -(10**12))
NANOS: Final = (0, 999_999_999, 10**9, -1)
# Lengths at and just over the service's caps (strings of them are made on demand: hypothesis
# would print them in full).
LENGTHS: Final = (
    MAX_ID_LENGTH,
    MAX_ID_LENGTH + 1,
    LIMITS.max_text_bytes + 1,
    MAX_SCHEDULE_INPUT_BYTES + 1,
    LIMITS.max_input_bytes + 1,
)
# Short strings of the right shape or wrong in a known way.
SHAPES: Final = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "[]",
    "{}",
    '[{"role": "user", "content": "hi"}]',
    "0 0 1 1 *",  # a valid cron that fires once a year
    "Europe/Paris",
    "Mars/Olympus_Mons",
    "\u202e\ufeff💥",
)
odd_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
# Page tokens of the service's shape (base64 of {"s": scope, "t": time, "i": id}) with one part
# odd, so that the checks after the first are reached; and garbage.
token_values = st.one_of(odd_text, st.integers(), st.none())
SHAPED: Final = {"s": "pending", "t": "2020-01-01T00:00:00+00:00", "i": "int_"}
ODD_PARTS: Final = {
    "s": token_values,
    "t": st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2020-01-01"])
    | token_values,
    "i": st.just("int_\x00") | token_values,
}
forged_tokens = st.one_of(
    st.binary(max_size=40),
    *(
        st.fixed_dictionaries({**{key: st.just(value) for key, value in SHAPED.items()}, odd: values}).map(
            lambda data: json.dumps(data).encode()
        )
        for odd, values in ODD_PARTS.items()
    ),
    st.lists(token_values, max_size=3).map(lambda data: json.dumps(data).encode()),
).map(lambda raw: base64.urlsafe_b64encode(raw).decode())


def strings(known: Sequence[str]) -> st.SearchStrategy[str]:
    """Random text, boundary strings, forged page tokens, and `known` values (ids of objects
    that exist, names the service knows)."""
    long_strings = st.tuples(st.sampled_from(LENGTHS), st.sampled_from("xé")).map(
        lambda size: size[1] * size[0]
    )
    return st.one_of(st.sampled_from([*known, *SHAPES]), odd_text, forged_tokens, long_strings)


def _scalar(field: FieldDescriptor, known: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if field.name == "page_token":
        return forged_tokens | strings(known)
    if kind == FieldDescriptor.TYPE_STRING:
        return strings(known)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        numbers = [value.number for value in field.enum_type.values]
        return st.sampled_from([*numbers, max(numbers) + 1, 99, -1, 2**31 - 1])
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.sampled_from(INT32) | st.integers(-(2**31), 2**31 - 1)
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.sampled_from(INT64) | st.integers(-(2**63), 2**63 - 1)
    if is_timestamp(field):
        return st.builds(
            Timestamp,
            seconds=st.sampled_from(SECONDS) | st.integers(-(2**63), 2**63 - 1),
            nanos=st.sampled_from(NANOS) | st.integers(-(2**31), 2**31 - 1),
        )
    if field.message_type is not None:
        return messages(field.message_type, known)
    raise NotImplementedError(f"no strategy for {field.full_name} (type {kind}); add one")


def _value(field: FieldDescriptor, known: Sequence[str]) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and is_map(field):
        key, value = (_scalar(entry.fields_by_name[name], known) for name in ("key", "value"))
        many = st.just({f"key{i}": "value" for i in range(65)})  # one entry over the cap
        return st.dictionaries(key, value, max_size=3) | many
    if field.is_repeated:
        return st.lists(_scalar(field, known), max_size=3)
    return _scalar(field, known)


def messages(descriptor: Descriptor, known: Sequence[str]) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type with any subset of their fields set."""
    message_class = message_factory.GetMessageClass(descriptor)
    fields = {field.name: _value(field, known) for field in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: message_class(**values))
