"""Any Python string in PostgreSQL, and back exactly.

PostgreSQL `text` cannot hold NUL (U+0000), `jsonb` refuses the `\\u0000` escape, and neither
holds a lone surrogate (U+D800..U+DFFF, which a JSON "\\ud800" escape decodes to). Models, tools
and users produce all of these. Every string the store writes therefore goes through one
reversible escape, applied by the connection's codecs (`timestep.store.database`), so no query
can forget it:

    E (U+FFFF, a noncharacter)  ->  E E
    U+0000                      ->  E "0"
    a surrogate U+D800..U+DFFF  ->  E "u" and its 4 lowercase hex digits

`unescape(escape(s)) == s` for every string, and ordinary text (no NUL, surrogate or U+FFFF) is
left as it is, so SQL comparisons, prefixes and ordering of such text are unchanged. The escape
works character by character, so equality and prefixes also hold for escaped text. `unescape`
leaves an E that starts no escape as it is (text stored before the escape existed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

ESCAPE: Final = "\uffff"
_UNSAFE: Final = re.compile("[\x00\ud800-\udfff\uffff]")
_ESCAPED: Final = re.compile("\uffff(?:(\uffff)|(0)|u(d[89a-f][0-9a-f]{2}))")
# JSON text (as json.dumps writes it with ensure_ascii=False) that may hold a string needing
# the escape; a false positive (a literal backslash-u0000) only costs the slow path.
_UNSAFE_JSON: Final = re.compile("\\\\u0000|[\ud800-\udfff\uffff]")


def _escape_character(match: re.Match[str]) -> str:
    character = match.group()
    if character == ESCAPE:
        return ESCAPE + ESCAPE
    if character == "\x00":
        return ESCAPE + "0"
    return f"{ESCAPE}u{ord(character):04x}"


def _unescape_match(match: re.Match[str]) -> str:
    escape, nul, surrogate = match.groups()
    if escape:
        return ESCAPE
    if nul:
        return "\x00"
    return chr(int(surrogate, 16))


def escape(text: str) -> str:
    """`text` as PostgreSQL can store it (identity on ordinary text)."""
    if text.isascii():
        return text.replace("\x00", ESCAPE + "0") if "\x00" in text else text
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_character, text)


def unescape(text: str) -> str:
    """The string `escape` made `text` from."""
    if ESCAPE not in text:
        return text
    return _ESCAPED.sub(_unescape_match, text)


def escape_texts(texts: Sequence[str | None]) -> list[str | None]:
    """A `text[]` parameter escaped: asyncpg encodes `text[]` with its built-in codec, which
    the `text` codec does not reach."""
    return [None if text is None else escape(text) for text in texts]


def _map_strings(value: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, dict):
        return {
            convert(key) if isinstance(key, str) else key: _map_strings(item, convert)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_map_strings(item, convert) for item in value]
    return value


def encode_json(value: Any) -> str:
    """`value` as JSON text for a `json`/`jsonb` parameter, every string and key escaped."""
    text = json.dumps(value, ensure_ascii=False)
    if _UNSAFE_JSON.search(text) is None:
        return text
    return json.dumps(_map_strings(value, escape), ensure_ascii=False)


def decode_json(text: str) -> Any:
    """A `json`/`jsonb` value from PostgreSQL, every string and key unescaped."""
    value = json.loads(text)
    return value if ESCAPE not in text else _map_strings(value, unescape)
