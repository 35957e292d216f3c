"""PhraseChunker: where phrases end, markdown removal, and that no text is lost or doubled."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.voice.chunker import PhraseChunker, strip_markdown


def chunk(text: str, chunker: PhraseChunker | None = None) -> list[str]:
    c = chunker or PhraseChunker()
    return c.push(text) + c.flush()


def chunk_streamed(text: str, cuts: list[int], chunker: PhraseChunker | None = None) -> list[str]:
    c = chunker or PhraseChunker()
    out: list[str] = []
    for a, b in itertools.pairwise([0, *sorted(set(cuts)), len(text)]):
        out += c.push(text[a:b])
    return out + c.flush()


CASES = [
    pytest.param("Hello there. How are you?", ["Hello there.", "How are you?"], id="sentences"),
    pytest.param("Great! Really? Yes.", ["Great!", "Really?", "Yes."], id="! and ?"),
    pytest.param(
        'He said "stop." Then left.', ['He said "stop."', "Then left."], id="closing quote"
    ),
    pytest.param("(See below.) Next one.", ["(See below.)", "Next one."], id="closing bracket"),
    pytest.param("It costs 3.50 dollars. Okay.", ["It costs 3.50 dollars.", "Okay."], id="decimal"),
    pytest.param(
        "Dr. Smith and Mrs. Jones met St. Peter. Done.",
        ["Dr. Smith and Mrs. Jones met St. Peter.", "Done."],
        id="abbreviations",
    ),
    pytest.param(
        "Bring ID, e.g. a passport. Arrive at 9 a.m. Tomorrow is fine.",
        ["Bring ID, e.g. a passport.", "Arrive at 9 a.m. Tomorrow is fine."],
        id="e.g. and a.m.",
    ),
    pytest.param(
        "Ask J. R. Tolkien. Or the U.S. Embassy.",
        ["Ask J. R. Tolkien.", "Or the U.S. Embassy."],
        id="initials",
    ),
    pytest.param(
        "Well... maybe later. Hmm… let me see.",
        ["Well... maybe later.", "Hmm… let me see."],
        id="ellipsis mid-sentence",
    ),
    pytest.param("Wait... Okay, go.", ["Wait...", "Okay, go."], id="ellipsis ending a sentence"),
    pytest.param(
        "Version 2.0.1 is out. Yes.", ["Version 2.0.1 is out.", "Yes."], id="dotted number"
    ),
    pytest.param(
        "Meet at 3:30, or 1,000 times.",
        ["Meet at 3:30,", "or 1,000 times."],
        id="no split in 3:30 or 1,000",
    ),
    pytest.param(
        "好的。我明白了！谢谢？",  # noqa: RUF001
        ["好的。", "我明白了！", "谢谢？"],  # noqa: RUF001
        id="CJK sentence ends",
    ),
    pytest.param("「好的。」然后", ["「好的。」", "然后"], id="CJK closing bracket"),
    pytest.param("Line one\nLine two", ["Line one", "Line two"], id="newline"),
    pytest.param(
        "Sure, I can help with that.", ["Sure, I can help with that."], id="short first clause"
    ),
    pytest.param(
        "Of course, I can help with that.",
        ["Of course,", "I can help with that."],
        id="first phrase cut at a clause",
    ),
    pytest.param(
        "Certainly—let me check that.", ["Certainly—", "let me check that."], id="em dash"
    ),
    pytest.param("  lots   of\t space  ", ["lots of space"], id="whitespace collapsed"),
    pytest.param("", [], id="empty"),
    pytest.param("No ending punctuation", ["No ending punctuation"], id="remainder on flush"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_phrases(text: str, expected: list[str]) -> None:
    assert chunk(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_phrases_streamed_character_by_character(text: str, expected: list[str]) -> None:
    assert chunk_streamed(text, list(range(len(text)))) == expected


def test_phrases_come_out_as_soon_as_they_are_decided() -> None:
    c = PhraseChunker()
    assert c.push("Hello there.") == []  # the next word may be lower case
    assert c.push(" H") == ["Hello there."]
    assert c.push("ow are you") == []
    assert c.flush() == ["How are you"]


def test_later_phrases_split_at_clauses_only_beyond_min_chars() -> None:
    text = (
        "Okay. Your table is booked for Friday, at eight. "
        "I have also sent the confirmation to your email address, and a reminder."
    )
    assert chunk(text) == [
        "Okay.",
        "Your table is booked for Friday, at eight.",  # 38 chars at the comma: too short
        "I have also sent the confirmation to your email address,",
        "and a reminder.",
    ]


def test_flush_starts_a_new_reply() -> None:
    c = PhraseChunker()
    assert chunk("Of course, it is.", c) == ["Of course,", "it is."]
    assert chunk("Of course, it is.", c) == ["Of course,", "it is."]  # first-phrase rule again


def test_reset_drops_the_reply_in_progress() -> None:
    c = PhraseChunker()
    c.push("Half a sent")
    c.reset()
    assert chunk("New reply.", c) == ["New reply."]


def test_long_text_is_split_at_the_last_space_before_max_chars() -> None:
    words = " ".join(["word"] * 30)  # 149 characters, no punctuation
    phrases = chunk(words, PhraseChunker(max_chars=50))
    assert all(len(p) <= 50 for p in phrases)
    assert phrases[0] == " ".join(["word"] * 10)  # 49 characters
    assert " ".join(phrases) == words


def test_text_without_spaces_is_cut_at_max_chars() -> None:
    assert chunk("x" * 120, PhraseChunker(max_chars=50)) == ["x" * 50, "x" * 50, "x" * 20]


@pytest.mark.parametrize("kwargs", [{"min_first_chars": 0}, {"min_chars": 300}, {"max_chars": 5}])
def test_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PhraseChunker(**kwargs)


# -- markdown ---------------------------------------------------------------------------
MARKDOWN = [
    ("This is **important**.", "This is important."),
    ("Use __this__ one.", "Use this one."),
    ("Run `ls -l` now.", "Run ls -l now."),
    ("```\ncode\n```", "\ncode\n"),
    ("# Title\n## Sub title", "Title\nSub title"),
    ("#1 priority, #hashtag", "#1 priority, #hashtag"),
    ("- one\n- two\n  - nested", "one\ntwo\n  nested"),
    ("* one\n* two", "one\ntwo"),
    ("**Bold** start", "Bold start"),
    ("5 - 3 = 2, a*b, snake_case, -5", "5 - 3 = 2, a*b, snake_case, -5"),
    ("***both***", "*both*"),
    ("Line\n-5 degrees", "Line\n-5 degrees"),
]


@pytest.mark.parametrize(("text", "expected"), MARKDOWN)
def test_strip_markdown(text: str, expected: str) -> None:
    assert strip_markdown(text) == expected


def test_markdown_split_across_deltas_is_still_removed() -> None:
    text = "- **Monday** at `9`\n# Notes\nDone."
    assert chunk_streamed(text, list(range(len(text)))) == ["Monday at 9", "Notes", "Done."]


def test_a_list_reads_as_one_phrase_per_item() -> None:
    reply = "Here are your options:\n\n1. **Pasta** — with tomato\n2. Salad\n- Soup\n"
    assert chunk(reply) == [
        "Here are your options:",
        "1. Pasta — with tomato",  # a list number is not a sentence end
        "2. Salad",
        "Soup",
    ]


# -- no text lost or doubled, whatever the deltas ----------------------------------------
ALPHABET = st.sampled_from(
    [
        *"abcXYZ019 .,;:!?…—\n\t\"')(*_`#-",
        *("Dr.", "e.g.", "3.5", " a.m. ", "1. ", "**", "\n- ", "\n# "),
        *"。，」！",  # noqa: RUF001
    ]
)
TEXT = st.lists(ALPHABET, max_size=120).map("".join)
MARKUP = re.compile(r"[*_`#\-\s]")
SPACE = re.compile(r"\s")


@settings(max_examples=400, deadline=None)
@given(text=TEXT, cuts=st.lists(st.integers(0, 200), max_size=30), small=st.booleans())
def test_any_split_gives_the_same_phrases_and_loses_nothing(
    text: str, cuts: list[int], small: bool
) -> None:
    def make() -> PhraseChunker:
        return PhraseChunker(5, 12, 20) if small else PhraseChunker()

    whole = chunk(text, make())
    streamed = chunk_streamed(text, [c for c in cuts if c < len(text)], make())
    assert streamed == whole
    assert all(p and p == " ".join(p.split()) for p in whole)
    # Everything but markdown and whitespace survives, in order, once.
    assert MARKUP.sub("", "".join(whole)) == MARKUP.sub("", text)
    # And exactly the markdown strip_markdown removes is removed.
    assert SPACE.sub("", "".join(whole)) == SPACE.sub("", strip_markdown(text))
