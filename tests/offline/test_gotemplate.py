"""The Go-template renderer (webhook/offline/gotemplate.py): each builtin and construct against
the text Go's `text/template` writes, and a one-line error naming the action for anything it
does not render. The expected texts follow Go's documented semantics, and where `go` is on the
PATH the same table is run through Go's own text/template to prove them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from webhook.offline import gobuiltins, gotemplate

DATA: dict[str, Any] = {
    "P": {"Local": 4},
    "E": {},
    "S": "hi",
    "L": [1, 2, 3],
    "M": {"k": 1, "j": 2},
    "N": {"a": [5, 6]},
    "O": {"in": {"x": 5}},
    "F": 2.5,
}

# (template, what Go writes over DATA)
TABLE: list[tuple[str, str]] = [
    # and / or return an argument, and stop at the first that decides
    ("{{ and 1 0 2 }} {{ and 1 2 }}", "0 2"),
    ('{{ or 0 "" 3 }}|{{ or 0 "" }}|', "3||"),
    ("{{ or (and .P .P.Local) 1 }} {{ or (and .E .E.Local) 1 }}", "4 1"),
    ("{{ and 0 (index .L 9) }} {{ or 1 (index .L 9) }}", "0 1"),
    ('{{ not 0 }} {{ not "x" }} {{ not .E }} {{ not .P }}', "true false true false"),
    # comparisons
    ('{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ eq "a" "b" }} {{ eq true true }}', "true true false true"),
    ('{{ ne 1 2 }} {{ ne "a" "a" }}', "true false"),
    (
        '{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ lt .F 3.0 }}',
        "true true true false true",
    ),
    # len, index, slice
    ('{{ len "héllo" }} {{ len .L }} {{ len .M }} {{ len .E }}', "6 3 2 0"),
    ('{{ index .L 2 }} {{ index .M "k" }} {{ index .N "a" 1 }} {{ index "abc" 1 }}', "3 1 6 98"),
    ('{{ slice "hello" 1 3 }} {{ slice .L 1 }} {{ slice .L 0 2 }}', "el [2 3] [1 2]"),
    # printf, print, println
    ('{{ printf "%d-%s-%v-%q-%t" 7 "x" 1.5 "y" true }}', '7-x-1.5-"y"-true'),
    (
        '{{ printf "%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c" 42 42 42 42 255 255 8 5 65 }}',
        "   42|42   |00042|+42|ff|FF|10|101|A",
    ),
    (
        '{{ printf "%.2f|%8.3f|%e|%g|%v|%-6s|%.2s|%x" 3.14159 2.5 1234.5678 0.000012 100000000.0 "ab" "xyz" "hi" }}',
        "3.14|   2.500|1.234568e+03|1.2e-05|1e+08|ab    |xy|6869",
    ),
    ('{{ printf "%s|%d|%t" 1 "a" 2 }}', "%!s(int=1)|%!d(string=a)|%!t(int=2)"),
    (
        '{{ printf "%5s|%-5s|%+d|% d|%T|%T" "ab" "ab" 5 5 1.5 "x" }}',
        "   ab|ab   |+5| 5|float64|string",
    ),
    (
        '{{ printf "%.3f|%8.2e|%-8.3g|%+.1f|%010.3f" 3.14159 1234.5 0.000123 2.25 -3.5 }}',
        "3.142|1.23e+03|0.000123|+2.2|-00003.500",
    ),
    ('{{ printf "%v|%5v|%-5v|%05v" 1 2 3 -4 }}', "1|    2|3    |-0004"),
    (
        '{{ printf "%.2s|%8q|%5t|%d|%s" "hello" "x" true 1.5 true }}',
        'he|     "x"| true|%!d(float64=1.5)|%!s(bool=true)',
    ),
    ('{{ printf "abc%" }}', "abc%!(NOVERB)"),
    (
        '{{ printf "%d %d" 1 }} {{ printf "%d" 1 2 }} {{ printf "100%%" }}',
        "1 %!d(MISSING) 1%!(EXTRA int=2) 100%",
    ),
    ('{{ print 1 2 "a" "b" 3 }}|{{ println 1 "a" }}|', "1 2ab3|1 a\n|"),
    # pipelines, parentheses, fields of a value
    ('{{ .S | printf "%s!" }} {{ "a" | printf "%s-%s" "b" }} {{ 3 | eq 3 }}', "hi! b-a true"),
    (
        '{{ (index .L 0) }} {{ (index .O "in").x }} {{ (.O).in.x }} {{ $.S }} {{ .O.in }}',
        "1 5 5 hi map[x:5]",
    ),
    # if / else if / else, trimming, comments
    ("{{ if and .P (gt .P.Local 2) }}big{{ else if .P }}small{{ else }}none{{ end }}", "big"),
    ("{{ if .E }}a{{ else if eq 1 2 }}b{{ else }}c{{ end }}{{ if 0 }}d{{ end }}", "c"),
    ('{{- /* a comment */ -}}   x  {{- " y " -}}  z', "x y z"),
    ("a {{- 1 }} {{ 2 -}} b{{/* gone */}}", "a1 2b"),
    ("{{ if 1 }}{{ if 0 }}a{{ else }}b{{ end }}{{ else }}c{{ end }}", "b"),
    # constants and printing
    (
        "{{ 0x1F }} {{ 017 }} {{ 1_000 }} {{ 'a' }} {{ -3 }} {{ 1.5e3 }} {{ 0o17 }} {{ 0b101 }}",
        "31 15 1000 97 -3 1500 15 5",
    ),
    (
        '{{ "a\\tb\\u00e9\\x41" }} {{ `raw\\n` }} {{ true }} {{ print nil }}',
        "a\tbéA raw\\n true <nil>",
    ),
    (
        "{{ .F }} {{ 1e6 }} {{ 123456.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1e21 }} {{ -0.5 }}",
        "2.5 1e+06 123456 0.0001 1e-05 1e+21 -0.5",
    ),
    ("{{ .M }} {{ .L }} {{ .E }} {{ .Missing }}", "map[j:2 k:1] [1 2 3] map[] <no value>"),
    ('{{ "}}" }}', "}}"),
]

# Templates Go refuses too (each one's error names its action here).
GO_ERRORS: list[str] = [
    '{{ eq 1 "a" }}',
    "{{ lt true false }}",
    "{{ index .L 5 }}",
    "{{ len 3 }}",
    "{{ .S.X }}",
    "{{ if 1 }}a",
    "{{ end }}",
    "{{ 1 2 }}",
    "{{ (1 }}",
    "{{ nope 1 }}",
    "{{ and }}",
    "{{ slice .L 2 1 }}",
    "{{ nil }}",
    "{{ if 1 }}a{{ else }}b{{ else }}c{{ end }}",
    "{{ if1 }}a{{ end }}",
    '{{ print"a" }}',
    '{{ print 1"a" }}',
    "{{ /* c */ }}",
    "{{ 08 }}",
    "{{ 1_ }}",
    "{{ 1__0 }}",
    "{{ 99999999999999999999 }}",
    "{{ index nil }}",
]

# Constructs Go renders and this renderer refuses, naming them.
REFUSED: list[tuple[str, str]] = [
    ("{{ range .L }}{{ . }}{{ end }}", "{{ range .L }}: the action 'range' is not supported"),
    ("{{ with .P }}{{ .Local }}{{ end }}", "{{ with .P }}: the action 'with' is not supported"),
    ("{{ $x := 1 }}{{ $x }}", "{{ $x := 1 }}: variable $x (variables are not supported)"),
    ("{{ html .S }}", "{{ html .S }}: the function 'html' is not supported"),
    ('{{ printf "%x" 1.5 }}', "printf's %x of a float64 is not supported"),
    # printf's flags, precisions and verbs beyond those above.
    ('{{ printf "%05s" "a" }}', "printf's %0s of a string is not supported"),
    ('{{ printf "%#x" 1 }}', "printf's %#x of a int is not supported"),
    ('{{ printf "%.3d" 1 }}', "printf's %d of a int is not supported"),
    ('{{ printf "%*d" 1 2 }}', "printf's %* is not supported"),
    ('{{ printf "%[1]d" 1 }}', "printf's %[ is not supported"),
    ('{{ printf "%c" -1 }}', "printf's %c of -1 is not supported"),
    ('{{ printf "%+v" 1 }}', "printf's %+v of a int is not supported"),
    # Go's strings are bytes: an escape past ASCII, a hexadecimal float.
    ('{{ "\\xc3\\xa9" }}', "a byte escape past ASCII (\\xc3) is not supported"),
    ("{{ 0x1p4 }}", "unexpected 'p4' right after '0x1'"),
]


@pytest.mark.parametrize(("template", "expected"), TABLE)
def test_each_construct_renders_as_go_writes_it(template: str, expected: str) -> None:
    assert gotemplate.render(template, DATA) == expected


@pytest.mark.parametrize("template", GO_ERRORS)
def test_what_go_refuses_is_refused_naming_the_action(template: str) -> None:
    with pytest.raises(gobuiltins.TemplateError) as raised:
        gotemplate.render(template, DATA)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("{{") or message == "unterminated if in template", message


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_a_construct_outside_the_subset_is_refused_in_one_line(template: str, message: str) -> None:
    with pytest.raises(gobuiltins.TemplateError, match=None) as raised:
        gotemplate.render(template, DATA)
    assert message in str(raised.value)


def test_a_struct_is_true_even_when_empty_as_a_non_nil_pointer_is() -> None:
    data = {"Prefill": gobuiltins.Struct(), "Labels": {}}
    text = "{{ if .Prefill }}p{{ end }}{{ if .Labels }}l{{ end }}{{ not .Prefill }}"
    assert gotemplate.render(text, data) == "pfalse"


def test_a_field_of_an_absent_object_reads_as_no_value() -> None:
    assert gotemplate.render("{{ or .Spec.Parallelism.DataLocal 1 }}", {"Spec": {}}) == "1"


GO = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).is_file()), None)
EXECUTE = Path(__file__).parent.parent / "testdata" / "gotemplate" / "execute.go"


@pytest.mark.skipif(GO is None, reason="Go's own text/template needs `go` on the PATH")
def test_the_table_is_what_go_itself_writes(tmp_path: Path) -> None:
    cases = [{"template": t, "data": DATA} for t, _ in TABLE] + [
        {"template": t, "data": DATA} for t in GO_ERRORS
    ]
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "",
        "GO111MODULE": "off",
        "GOPATH": str(tmp_path / "gopath"),
    }
    done = subprocess.run(
        [str(GO), "run", str(EXECUTE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    written = [(r["out"], r["err"]) for r in results[: len(TABLE)]]
    assert written == [(expected, False) for _, expected in TABLE]
    assert all(r["err"] for r in results[len(TABLE) :])
