"""Cut an LLM's streamed reply into phrases for the TTS, as early as sounds natural.

``PhraseChunker.push(delta)`` returns the phrases the new text completed;
``flush()`` returns the rest at the end of the reply and readies the chunker for
the next one. A phrase ends:

- after a sentence end (``. ! ? …`` or ``...``, optionally followed by closing
  quotes or brackets) followed by whitespace, unless the next word starts in
  lower case (an ellipsis mid-sentence, an unknown abbreviation) or the dot
  ends a known abbreviation (Dr. e.g. p.m. ...), an initial (J. R.) or the
  number of a list item (``3.5`` has no whitespace after the dot anyway);
- right after a CJK sentence end (ideographic full stop, full-width ``!``/``?``:
  no space needed) or a newline;
- at a clause boundary (``, ; :`` followed by whitespace, an em dash, the
  full-width forms and the ideographic comma)
  once the phrase has ``min_first_chars`` (first phrase of a reply, so the first
  audio starts sooner) or more than ``min_chars`` (later phrases);
- at the last space before ``max_chars`` (or at ``max_chars``) when nothing else did.

The chunks are the same whichever way the text was split into deltas: a
boundary is only taken once the text deciding it has arrived. Markdown that a
TTS would read aloud is removed on the way (``**``, ``__``, backticks, ``#``
headings, ``-``/``*`` bullets); nothing else is dropped, and whitespace in a
phrase is collapsed to single spaces.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["PhraseChunker", "strip_markdown"]

_SENTENCE_END: Final = frozenset(".!?…")
_CJK_SENTENCE_END: Final = frozenset("。！？")  # noqa: RUF001
_CLOSERS: Final = frozenset("\"')]}»”’」』）】")  # noqa: RUF001
_CLAUSE: Final = frozenset(",;:")
_CJK_CLAUSE: Final = frozenset("，；：、")  # noqa: RUF001
_DASH: Final = "—"
_ABBREVIATIONS: Final = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "jr", "sr", "prof", "etc", "vs", "e.g", "i.e", "a.m", "p.m"}
)
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # J  or  U.S  (the final dot excluded)
_OPENERS: Final = "\"'([{«“‘"  # noqa: RUF001


class _MarkdownFilter:
    """Streaming removal of the markdown a TTS would read out.

    Conservative on purpose: ``**`` and ``__`` pairs (a lone ``*``/``_`` stays),
    every backtick, ``#`` runs followed by a space at the start of a line, and
    ``- ``/``* `` bullets at the start of a line. Characters whose fate depends
    on text not yet received are held back, so the output does not depend on how
    the input was split.
    """

    __slots__ = ("_line_start", "_pending")

    def __init__(self) -> None:
        self._pending = ""
        self._line_start = True

    def feed(self, text: str, final: bool = False) -> str:
        s = self._pending + text
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if self._line_start:
                if c in " \t":
                    out.append(c)
                    i += 1
                    continue
                if c == "#":
                    j = _run_end(s, i)
                    if j == n and not final:
                        break
                    if j < n and s[j] == " ":
                        i = j + 1  # a heading marker
                    else:
                        out.append(s[i:j])  # "#1", "#hashtag"
                        i = j
                    self._line_start = False
                    continue
                if c in "-*":
                    if i + 1 == n and not final:
                        break
                    if i + 1 < n and s[i + 1] == " ":
                        i += 2  # a bullet
                        self._line_start = False
                        continue
                self._line_start = False
            if c == "\n":
                out.append(c)
                self._line_start = True
                i += 1
            elif c == "`":
                i += 1
            elif c in "*_":
                j = _run_end(s, i)
                if j == n and not final:
                    break  # the run may go on in the next delta
                out.append(c * ((j - i) % 2))  # pairs go, an odd one stays
                i = j
            else:
                out.append(c)
                i += 1
        self._pending = s[i:]
        return "".join(out)

    def flush(self) -> str:
        text = self.feed("", final=True)
        self.reset()
        return text

    def reset(self) -> None:
        self._pending = ""
        self._line_start = True


def _run_end(s: str, i: int) -> int:
    """End of the run of the character at ``i``."""
    c = s[i]
    j = i + 1
    while j < len(s) and s[j] == c:
        j += 1
    return j


def strip_markdown(text: str) -> str:
    """``text`` without the markdown ``PhraseChunker`` removes (whitespace kept)."""
    return _MarkdownFilter().feed(text, final=True)


def _normalise(text: str) -> str:
    return " ".join(text.split())


class PhraseChunker:
    """Streaming LLM text in, TTS-ready phrases out; one reply at a time."""

    def __init__(
        self, min_first_chars: int = 10, min_chars: int = 40, max_chars: int = 250
    ) -> None:
        if not 0 < min_first_chars <= max_chars or not 0 < min_chars <= max_chars:
            raise ValueError("need 0 < min_first_chars, min_chars <= max_chars")
        self.min_first_chars = min_first_chars
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._markdown = _MarkdownFilter()
        self._buf = ""
        self._first = True

    def push(self, delta: str) -> list[str]:
        """Add the next piece of the reply; return the phrases it completed."""
        self._buf += self._markdown.feed(delta)
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End the reply: return what is left as phrases, and start afresh."""
        self._buf += self._markdown.flush()
        phrases = self._drain(final=True)
        self.reset()
        return phrases

    def reset(self) -> None:
        """Drop the reply in progress (the caller interrupted)."""
        self._markdown.reset()
        self._buf = ""
        self._first = True

    def _drain(self, final: bool) -> list[str]:
        phrases: list[str] = []
        while True:
            # Leading whitespace never matters and differs with the delta split.
            self._buf = self._buf.lstrip()
            cut = self._next_cut(final)
            if cut is None:
                return phrases
            phrase = _normalise(self._buf[:cut])
            self._buf = self._buf[cut:]
            if phrase:
                phrases.append(phrase)
                self._first = False

    def _next_cut(self, final: bool) -> int | None:
        """Where the next phrase ends in the buffer; None: wait for more text."""
        buf = self._buf
        n = len(buf)
        if not n:
            return None
        min_clause = self.min_first_chars if self._first else self.min_chars + 1
        i = 0
        while i < n and i < self.max_chars:
            c = buf[i]
            if c == "\n":
                return i + 1
            if c in _SENTENCE_END:
                j = i + 1
                while j < n and buf[j] in _SENTENCE_END:
                    j += 1
                end = j
                while end < n and buf[end] in _CLOSERS:
                    end += 1
                k = end
                while k < n and buf[k].isspace():
                    k += 1
                if k == n:  # the closers, the space or the next word is still to come
                    return n if final else None
                if "\n" in buf[end:k]:
                    return end
                abbreviation = c == "." and j == i + 1 and _abbreviation(buf, i)
                if k > end and not buf[k].islower() and not abbreviation:
                    return end
                i = k
                continue
            if c in _CJK_SENTENCE_END:
                end = i + 1
                while end < n and buf[end] in _CLOSERS:
                    end += 1
                if end == n and not final:
                    return None
                return end
            if c in _CLAUSE or c in _CJK_CLAUSE or c == _DASH:
                if c in _CLAUSE:  # "3:30", "1,000" are not boundaries
                    if i + 1 == n:
                        return n if final else None
                    if not buf[i + 1].isspace():
                        i += 1
                        continue
                if len(buf[: i + 1].strip()) >= min_clause:
                    return i + 1
            i += 1
        if n > self.max_chars:
            space = buf.rfind(" ", 1, self.max_chars + 1)
            return space if space > 0 else self.max_chars
        return n if final else None


def _abbreviation(buf: str, dot: int) -> bool:
    """Whether the ``.`` at ``dot`` ends an abbreviation or initials rather than a sentence."""
    start = dot
    while start > 0 and not buf[start - 1].isspace():
        start -= 1
    word = buf[start:dot].lstrip(_OPENERS).lower()
    if start == 0 and word.isdigit():
        return True  # "2. Salad": a numbered list item (phrases start on a new line)
    return word in _ABBREVIATIONS or _INITIALS.fullmatch(word) is not None
