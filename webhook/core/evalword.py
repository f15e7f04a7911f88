"""The words bash makes of one arg that eval reads as shell code, for the args this can tell.

An eval launch (`eval "vllm serve … $@ …"`) pastes each arg into a command line and bash parses
it again. Here an arg's text, standing between blanks on that line, is taken through the steps
bash takes, as bash does them: split at unquoted blanks; brace expansion (`{a,b}`, `{1..3}`,
`{a..e..2}`, zero-padded `{01..10}`), on the text with its quotes, which protect what they
hold; then quote removal: `'…'`, `"…"` (and `$"…"`, untranslated), `$'…'` with its C escapes,
and a backslash outside quotes. A word that tilde expansion or a glob would change is named
(`TILDE`, `GLOB`): its value is the pod's. Anything else the shell would act on (an expansion,
a substitution, an operator, a comment, a newline, an unclosed quote, a trailing backslash)
makes `words` answer None: the caller tells what eval does with the arg by other means, and
claims no words for it.

It is long because bash's word rules are one job that only holds together whole: each step
(quotes, `$'…'` escapes, braces, tildes) reads the text the step before it left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

TILDE: Final = "tilde"
GLOB: Final = "glob"

_BLANK: Final = frozenset(" \t")
# Unquoted, these end the command line, start a comment's or a redirection's text, or run
# something: none is worked out here.
_OPERATOR: Final = frozenset("\n;&|()<>`")
# Unquoted, these end a word, so that a `#` after one starts a comment.
_ENDS_WORD: Final = frozenset(" \t\n;&|()<>")
# After `$`, these start an expansion ($NAME, ${…}, $(…), $[…], $1, $@, $*, $#, $?, $$, $!, $-).
_EXPANDS: Final = re.compile(r"[A-Za-z0-9_{(\[@*#?$!-]")
_NAME_EQUALS: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_GLOB_CHARS: Final = frozenset("*?[")
_C_ESCAPES: Final = MappingProxyType(
    {
        "a": "\a",
        "b": "\b",
        "e": "\x1b",
        "E": "\x1b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
        "v": "\v",
        "\\": "\\",
        "'": "'",
        '"': '"',
        "?": "?",
    }
)
_OCTAL: Final = re.compile(r"[0-7]{1,3}")
_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,2}")
_NUMBER: Final = re.compile(r"[-+]?[0-9]+")
_DOUBLE_ESCAPE: Final = re.compile(r'\\([$`"\\\n])')
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_SEQUENCE_LIMIT: Final = 1024  # a longer sequence is not listed here


@dataclass(frozen=True, slots=True)
class Told:
    """What bash makes of an arg: its words, or the expansion that leaves them to the pod
    (`TILDE`, `GLOB`), and whether brace expansion made more than one word of it."""

    words: tuple[str, ...]
    pending: str = ""
    braced: bool = False


class _Untold(Exception):
    """The arg holds what this module does not work out."""


def words(arg: str) -> Told | None:
    """What bash makes of `arg` standing alone, between blanks, on a command line it parses;
    None when that is not worked out here."""
    try:
        # Escaped newlines vanish as bash reads the line, before words are made: a `#` after
        # one opens a word, and so a comment.
        raw = _raw_words(_joined_lines(arg))
        # Whether a word is like an assignment, for tilde expansion, is asked of it as
        # written: the words brace expansion makes of `{a,b}=~` are not.
        expanded = [
            (word, _NAME_EQUALS.match(each) is not None) for each in raw for word in _braces(each)
        ]
        pending = next(
            (p for word, assignment in expanded if (p := _pending(word, assignment=assignment))),
            "",
        )
        made = tuple(_unquoted(word) for word, _ in expanded if word)
    except _Untold:
        return None
    return Told(made, pending, braced=[word for word, _ in expanded] != raw)


def unclosed(arg: str) -> bool:
    """Whether the arg opens a quote it does not close, which leaves eval's text unfinished. A
    `#` opening a word (after a blank or an operator, outside quotes) starts a comment: quotes
    after it, to the line's end, open nothing."""
    quoted, at = "", 0
    opens_word = True  # at the arg's start, or after an unquoted blank or operator
    while at < len(arg):
        char = arg[at]
        if char == "\\" and quoted != "'":
            # An escaped newline vanishes: what follows it opens a word if it did before.
            opens_word = opens_word and not quoted and arg[at + 1 : at + 2] == "\n"
            at += 2
            continue
        if char == "#" and not quoted and opens_word:
            end = arg.find("\n", at)
            if end < 0:
                return False
            at = end
            continue
        if not quoted:
            opens_word = char in _ENDS_WORD
        quoted, at = _quote_step(arg, at, quoted)
    return bool(quoted)


def operates(arg: str) -> bool:
    """Whether the arg holds, outside quotes and substitutions (`$(…)`, `` `…` ``), what ends
    a command line or starts another: `;`, `&`, `|`, `(`, `)`, `<`, `>`, a newline; or leaves
    a substitution open."""
    quoted, depth, backquoted, at = "", 0, False, 0
    while at < len(arg):
        char = arg[at]
        if char == "\\" and quoted != "'":
            at += 2
        elif quoted or char in "'\"" or arg.startswith("$'", at):
            quoted, at = _quote_step(arg, at, quoted)
        elif arg.startswith("$(", at):
            depth, at = depth + 1, at + 2
        elif char == ")" and depth:
            depth, at = depth - 1, at + 1
        elif char == "`":
            backquoted, at = not backquoted, at + 1
        elif char in _OPERATOR and not depth and not backquoted:
            return True
        else:
            at += 1
    return bool(depth) or backquoted


def one_line(text: str) -> bool:
    """Whether bash parses the whole text before it runs any of it: one line (its escaped
    newlines joined) with no backquote, whose text is parsed only once it runs."""
    return "\n" not in _joined_lines(text) and "`" not in text


def escapes_next(arg: str) -> bool:
    """Whether the arg ends in a backslash outside quotes, which quotes what follows it."""
    quoted, at = "", 0
    while at < len(arg):
        char = arg[at]
        if char == "\\" and quoted != "'":
            if at + 1 == len(arg):
                return not quoted
            at += 2
            continue
        quoted, at = _quote_step(arg, at, quoted)
    return False


def _quote_step(text: str, at: int, quoted: str) -> tuple[str, int]:
    """One step of a scan for quotes at `text[at]` (not a backslash bash honours there): the
    quote open after it (`'`, `"`, or `$'`, inside which a backslash escapes, as in `$'\\''`)
    and the index to go on from."""
    char = text[at]
    if quoted:
        return ("" if char == quoted[-1] else quoted), at + 1
    if text.startswith("$'", at):
        return "$'", at + 2
    if char in "'\"":
        return char, at + 1
    return "", at + 1


def _skip_quoted(text: str, at: int) -> int:
    """The index past the quoted string that starts at `at` (`'`, `"`, `$'` or `$"`)."""
    ansi = text.startswith("$'", at)
    if text[at] == "$":
        at += 1
    quote, at = text[at], at + 1
    while at < len(text):
        char = text[at]
        if (char == "\\" and quote == '"') or (char == "\\" and ansi):
            at += 2
            continue
        if char == quote:
            return at + 1
        if quote == '"' and (
            char == "`" or (char == "$" and _EXPANDS.match(text, at + 1) is not None)
        ):
            raise _Untold  # a substitution or an expansion inside the double quotes
        at += 1
    raise _Untold  # not closed in the arg: eval goes on reading past it


def _raw_words(arg: str) -> list[str]:
    """The arg's words as written, quotes kept, split at unquoted blanks."""
    found: list[str] = []
    start, at = 0, 0
    while at < len(arg):
        char = arg[at]
        if char in _BLANK:
            if at > start:
                found.append(arg[start:at])
            start = at = at + 1
            continue
        if char in _OPERATOR or (char == "#" and at == start):
            raise _Untold
        if char == "\\":
            if at + 1 >= len(arg):
                raise _Untold  # it escapes the blank after the arg: the next word joins it
            at += 2
            continue
        if char in "'\"" or arg.startswith(("$'", '$"'), at):
            at = _skip_quoted(arg, at)
            continue
        if char == "$" and _EXPANDS.match(arg, at + 1) is not None:
            raise _Untold
        at += 1
    if at > start:
        found.append(arg[start:at])
    return found


def _gobble(text: str, at: int, satisfy: str) -> int:
    """bash's `brace_gobbler`: from `at`, the index of the first `satisfy` at depth 0 outside
    quotes, or -1. An open brace between blanks, or before `}`, is not one; a close brace
    counts only after a comma or a `..` at its depth, as in bash."""
    level, quoted, commas = 0, "", 0
    while at < len(text):
        char = text[at]
        if char == "\\" and quoted != "'":
            at += 2
            continue
        if quoted or char in "'\"" or text.startswith("$'", at):
            # bash reads `$'…'` into a single-quoted string before brace expansion: what it
            # holds, up to the quote no backslash escapes, is quoted.
            quoted, at = _quote_step(text, at, quoted)
            continue
        if char == satisfy and level == 0:
            if char == "{" and text[at + 1 : at + 2] in ("", " ", "\t", "}") and at == 0:
                at += 1
                continue
            if char != "}" or commas:
                return at
        if char == "{":
            level += 1
        elif char == "}" and level:
            level -= 1
        elif level == 0 and (
            char == "," or (text.startswith("..", at) and text[at + 2 : at + 3] != "}")
        ):
            commas += 1
        at += 1
    return -1


def _braces(text: str) -> list[str]:
    """bash's `brace_expand` of one word as written."""
    at = 0
    while True:
        opening = _gobble(text, at, "{")
        if opening == -1:
            return [text]
        closing = _gobble(text, opening + 1, "}")
        if closing != -1:
            break
        at = opening + 1
    preamble, amble, rest = text[:opening], text[opening + 1 : closing], text[closing + 1 :]
    if _separator(amble) == -1:
        tack = _sequence(amble)
        if tack is None:
            if not rest:
                return [text]
            tack = [text[opening : closing + 1]]
    else:
        tack = _ambles(amble)
    return [preamble + part + after for part in tack for after in _braces(rest)]


def _separator(amble: str) -> int:
    """Where the first comma of an amble stands (bash looks past backslashes, not quotes or
    braces), or -1."""
    at = 0
    while at < len(amble):
        if amble[at] == "\\":
            at += 2
            continue
        if amble[at] == ",":
            return at
        at += 1
    return -1


def _ambles(amble: str) -> list[str]:
    """bash's `expand_amble`: each comma-separated part at depth 0, itself expanded."""
    parts: list[str] = []
    start = 0
    while True:
        comma = _gobble(amble, start, ",")
        end = len(amble) if comma == -1 else comma
        parts.extend(_braces(amble[start:end]))
        if comma == -1:
            return parts
        start = comma + 1


def _sequence(amble: str) -> list[str] | None:
    """bash's `expand_seqterm`: `x..y[..incr]` of two integers or two letters, or None."""
    pieces = amble.split("..")
    if len(pieces) not in (2, 3) or (len(pieces) == 3 and not _NUMBER.fullmatch(pieces[2])):
        return None
    first, last = pieces[0], pieces[1]
    step = int(pieces[2]) if len(pieces) == 3 else 1
    if not _INT64_MIN < step <= _INT64_MAX:
        return None  # bash takes no step it cannot hold in an intmax_t, nor its lowest
    if _NUMBER.fullmatch(first) and _NUMBER.fullmatch(last):
        if not all(_INT64_MIN <= int(end) <= _INT64_MAX for end in (first, last)):
            return None  # an end past intmax_t: bash leaves the braces as written
        width = max(_width(first), _width(last))
        return _steps(int(first), int(last), step, lambda n: f"{n:0{width}d}")
    letters = len(first) == len(last) == 1 and (first + last).isascii()
    if letters and first.isalpha() and last.isalpha():
        made = _steps(ord(first), ord(last), step, chr)
        if all(word.isalnum() for word in made):
            return made
        raise _Untold  # a character bash's range makes that it may quote: not told here
    return None


def _width(number: str) -> int:
    """The width bash pads a sequence to for one of its ends: its length when it starts with a
    zero (`05`, `-05`), else none."""
    zero = (number[:1] == "0" and len(number) > 1) or (number[:2] == "-0" and len(number) > 2)
    return len(number) if zero else 0


def _steps(low: int, high: int, step: int, shown: Callable[[int], str]) -> list[str]:
    """bash's `mkseq`: from `low` to `high` by the size of `step`, in the direction they go."""
    step = abs(step) or 1
    if low > high:
        step = -step
    count = abs(high - low) // abs(step) + 1
    if count > _SEQUENCE_LIMIT:
        raise _Untold
    return [shown(low + index * step) for index in range(count)]


def _pending(word: str, *, assignment: bool) -> str:
    """`TILDE` or `GLOB` when that expansion may change the word (made of a word like an
    assignment, or not), else ""."""
    if _tilde(word, assignment=assignment):
        return TILDE
    if _GLOB_CHARS & set(_outside_quotes(word)):
        return GLOB
    return ""


def _joined_lines(word: str) -> str:
    """The word with its escaped newlines gone, as bash's parser drops them, outside single
    quotes (and `$'…'`)."""
    kept: list[str] = []
    quoted, at = "", 0
    while at < len(word):
        if word[at] == "\\" and quoted != "'":
            if quoted == "$'" or word[at + 1 : at + 2] != "\n":
                kept.append(word[at : at + 2])
            at += 2
            continue
        quoted, after = _quote_step(word, at, quoted)
        kept.append(word[at:after])
        at = after
    return "".join(kept)


def _tilde(word: str, *, assignment: bool) -> bool:
    """Whether tilde expansion acts on the word: an unquoted `~` at its start, or, in a word
    made of one like an assignment (`NAME=`, `NAME+=`, `NAME[…]=`), right after its first `=`
    or after an unquoted `:` in its value, with no quoted character before the `/` (or `:`)
    that ends its tilde-prefix."""
    if word.startswith("~"):
        return _unquoted_prefix(word, 1, "/")
    name = _NAME_EQUALS.match(word) if assignment else None
    if name is None:
        return False
    value = name.end()
    bare = _outside_quotes(word)
    starts = [value, *(at + 1 for at in range(value, len(bare)) if bare[at] == ":")]
    return any(word[at : at + 1] == "~" and _unquoted_prefix(word, at + 1, "/:") for at in starts)


def _unquoted_prefix(word: str, at: int, ends: str) -> bool:
    """Whether the tilde-prefix from `at` (up to one of `ends`, or the word's end) holds no
    quoted character: bash expands only an unquoted one."""
    while at < len(word) and word[at] not in ends:
        if word[at] in "'\"\\":
            return False
        at += 1
    return True


def _outside_quotes(word: str) -> str:
    """The word's unquoted characters (each quoted one as a space)."""
    kept: list[str] = []
    at = 0
    while at < len(word):
        char = word[at]
        if char == "\\":
            kept.append("  ")
            at += 2
        elif char in "'\"" or word.startswith(("$'", '$"'), at):
            end = _skip_quoted(word, at)
            kept.append(" " * (end - at))
            at = end
        else:
            kept.append(char)
            at += 1
    return "".join(kept)


def _unquoted(word: str) -> str:
    """Quote removal: the word's text once its quotes and backslashes have done their work."""
    out: list[str] = []
    at = 0
    while at < len(word):
        char = word[at]
        if char == "\\":
            if word[at + 1] != "\n":  # a backslash and a newline vanish together
                out.append(word[at + 1])
            at += 2
        elif word.startswith("$'", at):
            end = _skip_quoted(word, at)
            out.append(_ansi_c(word[at + 2 : end - 1]))
            at = end
        elif char == "'":
            end = _skip_quoted(word, at)
            out.append(word[at + 1 : end - 1])
            at = end
        elif char == '"' or word.startswith('$"', at):
            start = at + (2 if char == "$" else 1)
            end = _skip_quoted(word, at)
            out.append(_DOUBLE_ESCAPE.sub(_double_escape, word[start : end - 1]))
            at = end
        else:
            out.append(char)
            at += 1
    return "".join(out)


def _double_escape(found: re.Match[str]) -> str:
    """Between double quotes a backslash quotes `$`, `` ` ``, `"` and itself, and vanishes with
    a newline after it."""
    return "" if found[1] == "\n" else found[1]


def _ansi_c(body: str) -> str:
    """A `$'…'` string's text: its C escapes decoded, as bash decodes them; what depends on the
    locale (`\\u`, `\\U`, a byte past ASCII) or ends the string early (a NUL) is not told."""
    out: list[str] = []
    at = 0
    while at < len(body):
        char = body[at]
        if char != "\\" or at + 1 >= len(body):
            out.append(char)
            at += 1
            continue
        code = body[at + 1]
        if code in _C_ESCAPES:
            out.append(_C_ESCAPES[code])
            at += 2
        elif (octal := _OCTAL.match(body, at + 1)) is not None:
            out.append(_byte(int(octal[0], 8)))
            at = octal.end()
        elif code == "x" and (hexa := _HEX.match(body, at + 2)) is not None:
            out.append(_byte(int(hexa[0], 16)))
            at = hexa.end()
        elif code in "uUcx":
            raise _Untold
        else:
            out.append("\\" + code)
            at += 2
    return "".join(out)


def _byte(value: int) -> str:
    if not 0 < value < 0x80:
        raise _Untold
    return chr(value)
