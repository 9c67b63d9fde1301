"""Headings and file names in Streamlit labels: shown as typed, no link, image, emphasis or HTML."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from ui.labels import label_text

# Streamlit's labels are Markdown: render them as CommonMark (plus strikethrough) does, then see what is left.
MD = MarkdownIt("commonmark").enable("strikethrough")

INJECTIONS = [
    "[click me](http://evil.example/phish)",
    "![pixel](http://tracker.example/p.gif)",
    "<script>alert('owned')</script>",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ ~~gone~~ `code`",
    "# Heading\n- item",
    ":red[alarm] :material/warning: :smile:",
    "$x^2$ costs \\$5",
    "report_v2.final (1).pdf",
    "a\\*b",
    "<http://autolink.example>",
]


def rendered(label: str) -> str:
    return MD.renderInline(label)


@pytest.mark.parametrize("text", INJECTIONS)
def test_a_label_shows_exactly_the_text_and_renders_nothing(text: str) -> None:
    html = rendered(label_text(text))
    assert not re.search(r"<(a|img|em|strong|code|s|del|script|h\d|li)\b", html), html
    expected = re.sub(r"\s+", " ", text).strip()
    unescaped = html.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    assert unescaped == expected


def test_without_escaping_the_same_labels_would_render() -> None:
    """The test above is not vacuous: the raw texts do turn into links, images and emphasis."""
    assert "<a href" in rendered(INJECTIONS[0]) and "<img" in rendered(INJECTIONS[1])
    assert "<strong>" in rendered(INJECTIONS[4])


def test_long_labels_are_cut_and_stay_on_one_line() -> None:
    label = label_text("word " * 100, max_chars=20)
    assert "\n" not in label and label.endswith("…") and len(label) <= 20
