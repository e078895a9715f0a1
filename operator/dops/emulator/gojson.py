"""Go's encoding/json error messages, for the Status messages kube-apiserver builds from them.

kube-apiserver reports a body it cannot decode with the decoder's own error text, e.g.
`couldn't get version/kind; json parse error: invalid character 'n' looking for beginning of object key string`
or `error decoding patch: unexpected end of JSON input`. Python's json module words its errors differently, so
this module re-implements the part of Go's scanner (`encoding/json/scanner.go`) that decides *which* syntax error a
document has, and the type errors `json.Unmarshal` gives for a top-level value of the wrong kind.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["json_kind", "syntax_error", "type_meta_error"]

# json.Unmarshal's description of the anonymous struct runtime.SimpleMetaFactory decodes apiVersion/kind into.
_TYPE_META_STRUCT: Final = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)
_SPACE: Final = b" \t\r\n"
_EOF: Final = 0x20  # at the end of the input Go's scanner steps one space (scanner.eof)
_DIGITS: Final = b"0123456789"
_HEX: Final = b"0123456789abcdefABCDEF"
_ESCAPES: Final = b'bfnrt\\/"'
_GO_ESCAPES: Final = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}


def _quote_char(c: int) -> str:
    """encoding/json quoteChar: the offending byte as a Go character literal ('x', '\\'', '\\n', 'Ã')."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    if c in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[c]}'"
    char = chr(c)  # Go converts the byte to the rune of the same value
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if not char.isprintable():
        return f"'\\u{c:04x}'"
    return f"'{char}'"


class _Syntax(Exception):
    pass


def _invalid(c: int, context: str) -> _Syntax:
    return _Syntax(f"invalid character {_quote_char(c)} {context}")


_LITERALS: Final = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}


def _scan(data: bytes) -> None:
    """Walk `data` as Go's scanner does; raise _Syntax with its message at the first error."""
    n = len(data)
    i = 0
    stack: list[str] = []  # "key" (object, expecting a key), "value" (object, after key), "array"

    def skip_space(at: int) -> int:
        while at < n and data[at] in _SPACE:
            at += 1
        return at

    def end() -> _Syntax:
        return _Syntax("unexpected end of JSON input")

    while True:
        # stateBeginValue (and the "or empty" variants after '{' / '[').
        i = skip_space(i)
        if i >= n:
            raise end()
        c = data[i]
        if c == ord("{"):
            i = skip_space(i + 1)
            if i >= n:
                raise end()
            if data[i] == ord("}"):
                i += 1
            else:
                if data[i] != ord('"'):
                    raise _invalid(data[i], "looking for beginning of object key string")
                i = _scan_string(data, i + 1)
                stack.append("key")
                i = skip_space(i)
                if i >= n:
                    raise end()
                if data[i] != ord(":"):
                    raise _invalid(data[i], "after object key")
                stack[-1] = "value"
                i += 1
                continue
        elif c == ord("["):
            i = skip_space(i + 1)
            if i >= n:
                raise end()
            if data[i] == ord("]"):
                i += 1
            else:
                stack.append("array")
                continue
        elif c == ord('"'):
            i = _scan_string(data, i + 1)
        elif c == ord("-") or c in _DIGITS:
            i = _scan_number(data, i)
        elif c in _LITERALS:
            word = _LITERALS[c]
            for offset in range(1, len(word)):
                got = data[i + offset] if i + offset < n else _EOF  # at the end Go's scanner steps a space
                if got != word[offset]:
                    expected = chr(word[offset])
                    raise _invalid(got, f"in literal {word.decode()} (expecting '{expected}')")
            i += len(word)
        else:
            raise _invalid(c, "looking for beginning of value")
        # stateEndValue: close containers / move to the next element.
        while True:
            if not stack:
                i = skip_space(i)
                if i < n:
                    raise _invalid(data[i], "after top-level value")
                return
            i = skip_space(i)
            if i >= n:
                raise end()
            c = data[i]
            top = stack[-1]
            if top == "value":
                if c == ord(","):
                    i = skip_space(i + 1)
                    if i >= n:
                        raise end()
                    if data[i] != ord('"'):
                        raise _invalid(data[i], "looking for beginning of object key string")
                    i = _scan_string(data, i + 1)
                    i = skip_space(i)
                    if i >= n:
                        raise end()
                    if data[i] != ord(":"):
                        raise _invalid(data[i], "after object key")
                    i += 1
                    break  # a value follows
                if c == ord("}"):
                    stack.pop()
                    i += 1
                    continue
                raise _invalid(c, "after object key:value pair")
            if c == ord(","):
                i += 1
                break
            if c == ord("]"):
                stack.pop()
                i += 1
                continue
            raise _invalid(c, "after array element")


def _scan_string(data: bytes, i: int) -> int:
    """From just after an opening quote to just after the closing one."""
    n = len(data)
    while i < n:
        c = data[i]
        if c == ord('"'):
            return i + 1
        if c == ord("\\"):
            i += 1
            if i >= n:
                raise _invalid(_EOF, "in string escape code")
            if data[i] == ord("u"):
                for k in range(1, 5):
                    got = data[i + k] if i + k < n else _EOF
                    if got not in _HEX:
                        raise _invalid(got, "in \\u hexadecimal character escape")
                i += 5
                continue
            if data[i] not in _ESCAPES:
                raise _invalid(data[i], "in string escape code")
        elif c < 0x20:
            raise _invalid(c, "in string literal")
        i += 1
    raise _Syntax("unexpected end of JSON input")


def _scan_number(data: bytes, i: int) -> int:
    n = len(data)

    def at(k: int) -> int:
        return data[k] if k < n else _EOF

    if data[i] == ord("-"):
        i += 1
        c = at(i)
        if c not in _DIGITS:
            raise _invalid(c, "in numeric literal")
    if data[i] == ord("0"):
        i += 1
    else:
        while at(i) in _DIGITS:
            i += 1
    if at(i) == ord("."):
        i += 1
        c = at(i)
        if c not in _DIGITS:
            raise _invalid(c, "after decimal point in numeric literal")
        while at(i) in _DIGITS:
            i += 1
    if at(i) in (ord("e"), ord("E")):
        i += 1
        if at(i) in (ord("+"), ord("-")):
            i += 1
        c = at(i)
        if c not in _DIGITS:
            raise _invalid(c, "in exponent of numeric literal")
        while at(i) in _DIGITS:
            i += 1
    return i


def syntax_error(data: bytes) -> str | None:
    """Go's json.SyntaxError message for `data`, or None when it is valid JSON."""
    try:
        _scan(data)
    except _Syntax as exc:
        return str(exc)
    return None


def json_kind(value: Any) -> str:
    """The JSON type name Go's UnmarshalTypeError uses: number, string, bool, array, object."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_meta_error(value: Any) -> str | None:
    """json.Unmarshal's error decoding `value` into runtime.SimpleMetaFactory's apiVersion/kind struct, if any."""
    if value is None:
        return None  # null leaves the struct as it is
    if not isinstance(value, dict):
        return f"json: cannot unmarshal {json_kind(value)} into Go value of type {_TYPE_META_STRUCT}"
    fields = {"apiversion": "apiVersion", "kind": "kind"}  # Go matches object keys case-insensitively
    for key, item in value.items():  # the earliest error in document order
        field = fields.get(key.lower())
        if field is not None and item is not None and not isinstance(item, str):
            return f"json: cannot unmarshal {json_kind(item)} into Go struct field .{field} of type string"
    return None
