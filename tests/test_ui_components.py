"""The source card's Markdown: document text shown as typed, and its addresses as links that open."""

from __future__ import annotations

import pytest

from ui.components import _lines


@pytest.mark.parametrize(
    ("text", "markdown"),
    [
        ("See https://www.debian.org/social_contract#guidelines.",
         "See [https://www\\.debian\\.org/social\\_contract\\#guidelines]"
         "(<https://www.debian.org/social_contract#guidelines>)\\."),
        ("(www.debian.org/doc) costs $5",
         "\\([www\\.debian\\.org/doc](<https://www.debian.org/doc>)\\) costs \\$5"),
        ("*not bold* <b>no html</b>", "\\*not bold\\* \\<b\\>no html\\</b\\>"),
        ("two\nlines", "two  \nlines"),
    ],
)  # fmt: skip
def test_document_text_is_escaped_and_addresses_link_to_themselves(text: str, markdown: str) -> None:
    assert _lines(text) == markdown


def test_a_marked_sentence_keeps_its_link() -> None:
    marked = _lines("Read https://example.org/a_b now.", ":orange-background[{}]")
    assert marked == ":orange-background[Read [https://example\\.org/a\\_b](<https://example.org/a_b>) now\\.]"
