"""The status digest's reading of a new command: what it changes of the old."""

from __future__ import annotations

import jsonpatch
import pytest

from tests.support.builders import admit, data_pod
from webhook.core import names
from webhook.core.mutate import WARNING_LIMIT
from webhook.core.patch import to_json
from webhook.core.rewrite import changed_words

WORDS = [
    # (old command, new command, what the digest hashes)
    (["bash", "-c"], ["bash", "-c", "s", "n"], ("\0", "\0", "s", "n")),
    (
        ["/bin/bash", "-c", 'x $@"'],
        ["/bin/bash", "-c", 'x \\"\\$@\\""'],
        ("\0", "\0", '$@\0\\"\\$@\\"'),
    ),
    (["sh", "-c", "abc"], ["sh", "-c", "abXc"], ("\0", "\0", "\0X")),
    (["sh", "-c", "aaa"], ["sh", "-c", "aa"], ("\0", "\0", "a\0")),
    ([], ["a"], ("a",)),
]


@pytest.mark.parametrize(("before", "after", "hashed"), WORDS)
def test_a_new_command_is_read_as_what_it_changes(
    before: list[str], after: list[str], hashed: tuple[str, ...]
) -> None:
    assert changed_words(before, after) == hashed


def _status(model: str) -> str:
    pod = data_pod("llm-eval-leader")
    main = pod["spec"]["containers"][0]
    main["command"][2] = main["command"][2].replace('"granite"', f'"{model}"')
    stored = jsonpatch.apply_patch(pod, to_json(admit(pod).patch))
    return str(stored["metadata"]["annotations"][names.STATUS_ANNOTATION])


def test_text_the_repair_leaves_alone_does_not_change_the_digest() -> None:
    # A preset rendered for two services differs in such text: one policy records both.
    assert _status("a") == _status("other-model")


@pytest.mark.parametrize(
    ("first", "shown"),
    [
        ("--max-model-len=4096", "'--max-model-len=4096'"),
        ("--served-model-name=granite", "'--served-model-name=g...'"),
        ("--x=" + "y" * 200, "'--x=yyyyyyyyyyyyyyyyy...'"),
    ],
    ids=["short", "long", "huge"],
)
def test_the_script_replaced_warning_is_said_whole(first: str, shown: str) -> None:
    pod = data_pod("llm-script-replaced")
    pod["spec"]["containers"][0]["args"][0] = first
    [warning] = admit(pod).warnings
    assert warning == (
        "multinode-webhook left main unchanged: args replaced the preset's script, "
        f"so bash runs {shown}"
    )
    assert len(warning) <= WARNING_LIMIT
