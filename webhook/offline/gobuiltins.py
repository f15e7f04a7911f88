"""Go's values as `text/template` sees them, for the template renderer (gotemplate.py): truth,
printing (fmt's `%v`), and Go's builtin functions (`not`, the comparisons, `len`, `index`,
`slice`, `print`, `printf`, `println`; the renderer runs `and` and `or` itself, as their
arguments are evaluated one at a time), each with Go's semantics over JSON values: whole
numbers are Go ints, other numbers float64, objects maps or (`Struct`) structs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

Function = Callable[..., Any]


class TemplateError(ValueError):
    """A template this renderer refuses or Go would stop on: the message names the action."""


class Struct(dict[str, Any]):
    """A JSON object that the Go type holds as a struct: true in `if` even when empty."""


# Go's values: truth, kinds for comparison, and printing (fmt's %v).


def truth(value: Any) -> bool:
    """Go's `if`: false, 0, nil and empty strings, maps and lists are false; structs true."""
    if isinstance(value, Struct):
        return True
    return bool(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "nil"
    return "other"


def go_type(value: Any) -> str:
    """The Go type a JSON value has in the template, as Go's messages name it."""
    return {
        "bool": "bool",
        "int": "int",
        "float": "float64",
        "string": "string",
        "nil": "<nil>",
    }.get(
        _kind(value), "map[string]interface {}" if isinstance(value, Mapping) else "[]interface {}"
    )


def _float_text(value: float, verb: str = "g", precision: int = -1) -> str:
    """Go's strconv.FormatFloat for %v/%g (shortest), %e and %f."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if verb == "f":
        return f"{value:.{6 if precision < 0 else precision}f}"
    if verb == "e":
        text = f"{value:.{6 if precision < 0 else precision}e}"
        return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", text)
    if precision >= 0:
        return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", f"{value:.{max(precision, 1)}g}")
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    if not any(digits):
        return "-0" if sign else "0"
    exponent = int(exponent)
    point = len(digits) + exponent  # where the decimal point stands after the digits' first
    text = "".join(map(str, digits))
    power = point - 1
    # Go's shortest %g writes an exponent from 1e+06 on, and below 1e-04.
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


def text_of(value: Any, *, top: bool = True) -> str:
    """`value` as Go's template prints it (fmt's %v; a missing value as `<no value>`)."""
    if value is None:
        return "<no value>" if top else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{text_of(value[k], top=False)}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(text_of(v, top=False) for v in value) + "]"
    return str(value)


# Go's builtins.


def _not(value: Any) -> bool:
    return not truth(value)


def _basic(value: Any) -> str:
    kind = _kind(value)
    if kind in ("int", "float", "string", "bool"):
        return kind
    raise TemplateError("invalid type for comparison")


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for other in others:
        one, two = _kind(first), _kind(other)
        if "other" in (one, two):
            raise TemplateError(f"non-comparable type {go_type(other)}")
        if one != two:
            if one != "nil" and two != "nil":
                raise TemplateError("incompatible types for comparison")
            continue
        if first == other:
            return True
    return False


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _lt(first: Any, second: Any) -> bool:
    one, two = _basic(first), _basic(second)
    if "bool" in (one, two):
        raise TemplateError("invalid type for comparison")
    if one != two:
        raise TemplateError("incompatible types for comparison")
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second)


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second)


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    raise TemplateError(f"len of type {go_type(value)}")


def _position(value: Any, *, cap: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError(f"cannot index slice/array with type {go_type(value)}")
    if value < 0 or value > cap:
        raise TemplateError(f"index out of range: {value}")
    return value


def _index(item: Any, *keys: Any) -> Any:
    if item is None:
        raise TemplateError("index of untyped nil")
    for key in keys:
        if item is None:
            raise TemplateError("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(key, str):
                raise TemplateError(f"value has type {go_type(key)}; should be string")
            item = item.get(key)
            continue
        if isinstance(item, str):
            item = item.encode()
        if isinstance(item, list | tuple | bytes):
            item = item[_position(key, cap=len(item) - 1)]
            continue
        raise TemplateError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise TemplateError(f"can't slice item of type {go_type(item)}")
    if len(bounds) > 2 + (not isinstance(item, str)):
        raise TemplateError("too many slice indexes")
    size = len(item.encode()) if isinstance(item, str) else len(item)
    low = _position(bounds[0], cap=size) if bounds else 0
    high = _position(bounds[1], cap=size) if len(bounds) > 1 else size
    if low > high:
        raise TemplateError(f"invalid slice index: {low} > {high}")
    if isinstance(item, str):
        return item.encode()[low:high].decode(errors="replace")
    return list(item[low:high])


def _print(*values: Any) -> str:
    out = ""
    for index, value in enumerate(values):
        if index and not isinstance(value, str) and not isinstance(values[index - 1], str):
            out += " "
        out += text_of(value, top=False)
    return out


def _println(*values: Any) -> str:
    return " ".join(text_of(v, top=False) for v in values) + "\n"


# printf's verbs, flags, width and precision (Go's `*` and `[n]` are refused when met).
_VERB: Final = re.compile(r"%([-+# 0]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)
# The verbs rendered here for each kind of value; those Go also renders for it are refused
# (`_ALSO_GO`), and any other is written as Go writes a verb its value does not take.
_TAKES: Final = {"string": "vsqxX", "int": "vdboxXc", "float": "veEfFgG", "bool": "vt", "nil": "v"}
_ALSO_GO: Final = {"string": "", "int": "OqU", "float": "bxXF", "bool": "", "nil": ""}


def _quoted(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _signed(text: str, *, negative: bool, flags: str) -> str:
    return ("-" if negative else "+" if "+" in flags else " " if " " in flags else "") + text


def _formatted(verb: str, flags: str, width: str, precision: str | None, value: Any) -> str:
    """One verb of Go's fmt over one value; a verb the value does not take is written as
    Go writes it, `%!d(string=x)`. A flag or precision not rendered here is refused."""
    kind = _kind(value)
    plain_v = kind == "other" and verb == "v" and not flags and precision is None
    if (kind == "other" or verb in _ALSO_GO.get(kind, "") or "#" in flags) and not plain_v:
        raise TemplateError(f"printf's %{flags}{verb} of a {go_type(value)} is not supported")
    if verb != "T" and kind != "other" and verb not in _TAKES[kind]:
        shown = "<nil>" if value is None else f"{go_type(value)}={text_of(value, top=False)}"
        return f"%!{verb}({shown})"
    numeric = kind in ("int", "float") and verb != "c"
    exact = (kind == "float" and verb in "eEfgG") or (kind == "string" and verb == "s")
    # Go's `+` and space on %v ask for field names, not a sign.
    signs = set("0+ ") if not numeric else set("+ ") if verb == "v" else set()
    if (precision is not None and not exact) or set(flags) & signs:
        raise TemplateError(f"printf's %{flags}{verb} of a {go_type(value)} is not supported")
    digits = int(precision) if precision else (0 if precision == "" else -1)
    if verb == "T":
        text = go_type(value)
    elif verb in "vs" or (verb == "t" and kind == "bool"):
        text = text_of(value, top=False)
        if verb == "s" and digits >= 0:
            text = text[:digits]
        if numeric:
            text = _signed(text.lstrip("-"), negative=text.startswith("-"), flags=flags)
    elif verb == "q":
        text = _quoted(value)
    elif verb == "c":
        if not (0 <= value <= 0x10FFFF) or 0xD800 <= value <= 0xDFFF:
            raise TemplateError(f"printf's %c of {value} is not supported")
        text = chr(value)
    elif kind == "int":
        text = _signed(format(abs(value), verb), negative=value < 0, flags=flags)
    elif kind == "string":
        text = value.encode().hex()
        text = text.upper() if verb == "X" else text
    else:
        text = _float_text(abs(value), verb.lower(), digits)
        text = text.upper() if verb in "EG" else text
        text = _signed(text, negative=math.copysign(1, value) < 0, flags=flags)
    if width and len(text) < int(width):
        pad = int(width) - len(text)
        if "-" in flags:
            text += " " * pad
        elif "0" in flags and numeric:
            signed = text[0] if text[:1] in "+- " else ""
            text = signed + "0" * pad + text[len(signed) :]
        else:
            text = " " * pad + text
    return text


def _printf(form: Any, *values: Any) -> str:
    if not isinstance(form, str):
        raise TemplateError(f"printf's format is a {go_type(form)}, not a string")
    out: list[str] = []
    position = 0
    used = 0
    for match in _VERB.finditer(form):
        out.append(form[position : match.start()])
        position = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%" and not (flags or width or precision is not None):
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if not verb.isalpha():
            raise TemplateError(f"printf's %{flags}{width}{verb} is not supported")
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_formatted(verb, flags, width, precision, values[used]))
        used += 1
    out.append(form[position:])
    if used < len(values):
        extra = ", ".join(f"{go_type(v)}={text_of(v, top=False)}" for v in values[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


BUILTINS: Final[dict[str, Function]] = {
    "not": _not,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _print,
    "printf": _printf,
    "println": _println,
}
