"""The store's reversible escape (timestep.store.content): a bijection on Python strings that
PostgreSQL can store, and the identity on ordinary text; and what a protobuf string carries of
any text (api.convert.proto_string)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from timestep.api.convert import proto_string
from timestep.store.content import ESCAPE, decode_json, encode_json, escape, unescape

# Every code point, surrogates included, with the characters the escape is about made likely.
any_text = st.text(
    st.characters() | st.sampled_from(["\x00", ESCAPE, "0", "u", "d", "8", "\ud800", "\udfff"])
)
ordinary_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=["\x00", ESCAPE]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
UNSTORABLE = {"\x00"} | {chr(c) for c in range(0xD800, 0xE000)}


def strings(value: Any) -> list[str]:
    """Every string and key in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for item in value.values() for s in strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def storable(text: str) -> bool:
    """What PostgreSQL text can hold: valid UTF-8 without NUL."""
    return not UNSTORABLE.intersection(text)


@given(any_text)
def test_unescape_reverses_escape(text: str) -> None:
    escaped = escape(text)
    assert storable(escaped)
    assert unescape(escaped) == text


@given(any_text, any_text)
def test_escape_is_injective_and_works_character_by_character(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)
    assert escape(a + b) == escape(a) + escape(b)


@given(ordinary_text)
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert escape(text) == text
    assert unescape(text) == text


def test_the_escapes() -> None:
    assert escape("a\x00b") == f"a{ESCAPE}0b"
    assert escape("\ud800x\udfff") == f"{ESCAPE}ud800x{ESCAPE}udfff"
    assert escape(ESCAPE) == ESCAPE * 2
    assert escape("🧪") == "🧪"


def test_unescape_leaves_an_escape_character_that_starts_no_escape() -> None:
    for text in (ESCAPE, f"{ESCAPE}x", f"{ESCAPE}u12", f"{ESCAPE}ue000", f"a{ESCAPE}"):
        assert unescape(text) == text


@given(json_values)
def test_json_values_round_trip_with_every_string_and_key_escaped(value: Any) -> None:
    text = encode_json(value)
    assert storable(text)
    assert all(storable(s) for s in strings(json.loads(text))), "jsonb refuses \\u0000 and lone surrogates"
    assert decode_json(text) == value


@given(st.recursive(st.none() | st.integers() | ordinary_text, lambda inner: st.lists(inner, max_size=3)))
def test_json_of_ordinary_text_is_plain_json(value: Any) -> None:
    assert json.loads(encode_json(value)) == value


@given(any_text)
def test_a_protobuf_string_gets_every_character_but_lone_surrogates(text: str) -> None:
    carried = proto_string(text)
    carried.encode()  # valid UTF-8
    assert carried == "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


@given(json_values)
def test_json_in_a_protobuf_string_means_what_it_meant(value: Any) -> None:
    """Raw lone surrogates in JSON text become their escapes: the same JSON, now UTF-8."""
    carried = proto_string(json.dumps(value, ensure_ascii=False), json_text=True)
    carried.encode()
    assert json.loads(carried) == json.loads(json.dumps(value))
