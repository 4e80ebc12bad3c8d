"""Text as the search index sees it: what is indexed, how words are found, and the query
language. Pure functions, the same for both engines.

Text is folded before either engine sees it (compatibility decomposition, combining marks
dropped, case folded: "Crème BRÛLÉE" and "creme brulee" are the same words, "straße" is
"strasse"), then cut into words: runs of letters, digits, marks and private-use
characters (the categories FTS5's `unicode61` keeps with `categories 'L* N* Co M*'`, so
Devanagari or Thai words stay whole). The index stores the words joined by spaces, so
SQLite's tokenizer and PostgreSQL's `simple` parser find exactly these words, whatever
the database's locale.

A query is words that must all occur: `"two words"` in quotes is a phrase, a word ending
in `*` a prefix (`hel*`); a word with punctuation inside (`e-mail`) is the phrase of its
parts, as it was indexed.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterable

MESSAGE, NAME, TOPIC = "m.room.message", "m.room.name", "m.room.topic"
#: The event types searched, each with the key the search API names it by.
KEY_OF_TYPE = {MESSAGE: "content.body", NAME: "content.name", TOPIC: "content.topic"}
TYPE_OF_KEY = {key: event_type for event_type, key in KEY_OF_TYPE.items()}
#: At most this many terms of a query are used (each one is an index lookup).
MAX_TERMS = 16

_ASCII_WORD = re.compile(r"[^\W_]+", re.ASCII)


#: Where combining marks and private-use characters live (besides the two private-use planes).
_SCANNED = (range(0x80, 0x20000), range(0xE0000, 0xE1000))
_PRIVATE_USE_PLANES = "\U000f0000-\U000ffffd\U00100000-\U0010fffd"


def _character_class(categories: tuple[str, ...]) -> str:
    """A regular-expression class (without brackets) of the characters of these categories."""
    ranges: list[list[int]] = []
    for block in _SCANNED:
        for code in block:
            if unicodedata.category(chr(code)) in categories:
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1][1] = code
                else:
                    ranges.append([code, code])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@cache
def _word_pattern() -> re.Pattern:
    """Words of any script: letters and digits (`\\w` without `_`), marks and private use.
    Built on first use (a scan of the code points, some 20 ms), not at import."""
    marks = _character_class(("Mn", "Mc", "Me", "Co"))
    return re.compile(f"(?:[^\\W_]|[{marks}{_PRIVATE_USE_PLANES}])+")


@cache
def _nonspacing_marks() -> re.Pattern:
    return re.compile(f"[{_character_class(('Mn',))}]+")


def fold(text: str) -> str:
    """Case and diacritics folded away: compatibility decomposition, combining marks
    dropped, recomposed, case folded."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", _nonspacing_marks().sub("", decomposed)).casefold()


def words(text: str) -> list[str]:
    """The words of a text, as they are written (fold first to compare them)."""
    pattern = _ASCII_WORD if text.isascii() else _word_pattern()
    return pattern.findall(text)


def searchable_text(event_type: str, content: dict[str, Any]) -> str | None:
    """The text an event is searched by, or None when it has none: a message's `body`, a
    room's `name`, a topic's `topic` and the `text/plain` bodies of its `m.topic`."""
    if event_type == MESSAGE:
        body = content.get("body")
        return body if isinstance(body, str) else None
    if event_type == NAME:
        name = content.get("name")
        return name if isinstance(name, str) else None
    if event_type == TOPIC:
        parts = [content["topic"]] if isinstance(content.get("topic"), str) else []
        block = content.get("m.topic")
        representations = block.get("m.text") if isinstance(block, dict) else None
        for representation in representations if isinstance(representations, list) else ():
            if isinstance(representation, dict) and representation.get("mimetype", "text/plain") == "text/plain":
                body = representation.get("body")
                if isinstance(body, str) and body not in parts:
                    parts.append(body)
        return "\n".join(parts) if parts else None
    return None


@dataclass(frozen=True)
class IndexedText:
    """What the index stores of a text: its folded words joined by spaces, and how many."""

    words: str
    length: int

    @classmethod
    def of(cls, text: str) -> "IndexedText | None":
        found = words(fold(text))
        return cls(" ".join(found), len(found)) if found else None


@dataclass(frozen=True)
class Term:
    """Folded words that must occur in this order, the last one possibly as a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(search_term: str) -> list[Term]:
    """The terms of a search, all of which must match; punctuation alone is no term."""
    terms: list[Term] = []
    for phrase, quoted_star, word in re.findall(r'"([^"]*)"?(\*?)|(\S+)', search_term):
        if word:
            stripped = word.replace('"', "")
            prefix = stripped.endswith("*")
            found = words(fold(stripped))
        else:
            prefix = bool(quoted_star)
            found = words(fold(phrase))
        if found:
            terms.append(Term(tuple(found), prefix))
    return list(dict.fromkeys(terms))[:MAX_TERMS]


def highlights(terms: list[Term], texts: Iterable[str]) -> list[str]:
    """The words to highlight: each query word, and each word of the results' texts that
    matches one (as written there: "Café" for a search for "cafe", "hello" for "hel*")."""
    exact = {word for term in terms for word in term.words}
    prefixes = tuple(term.words[-1] for term in terms if term.prefix)
    found = set(exact)
    for text in texts:
        for word in words(text):
            folded = fold(word)
            if folded in exact or (prefixes and folded.startswith(prefixes)):
                found.add(word)
    return sorted(found)
