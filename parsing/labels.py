"""Matching a label as people write it against a policy's synonyms.

This module owns one question: is the text before a line's separator a label some
``FieldSpec`` knows, and which one? People copy the contract's own wording
("Serial Number of Zultys System:"), add qualifiers ("Serial Number (board):",
"Appliance S/N"), extra words ("Your phone number:", "Software Version of Zultys System
and/or Client Applications"), accents or none ("Telefono" for "Teléfono"), bold
markers and any case or punctuation. Matching compares word sequences after folding
case, accents and punctuation, so "E-mail" and "e mail" are one label.

Precision comes from what may stand around the matched synonym: before it only a few
filler words ("your", "the") or one qualifier word; after it nothing, words like
"number"/"address", a part's qualifier, or a phrase that opens with a connector
("of", "for", "and/or", "/"). "Phone system down" is therefore not a phone label.
Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from parsing.types import FieldSpec

_FILLERS: Final = frozenset({"your", "the", "our", "my", "a", "an", "please", "votre", "ihre"})
_CONNECTORS: Final = frozenset(
    {
        "of", "for", "and", "or", "and/or", "in", "incl",
        "including", "per", "if", "/", "&", "de", "du", "des", "der", "del", "la",
        "le", "el", "und", "et", "y", "o", "ou", "oder",
    }
)  # fmt: skip
# Words that may follow a label without changing what it asks for ("Serial No. number").
_NOUNS: Final = frozenset(
    {"number", "numbers", "no", "nr", "address", "details", "info", "information"}
)
# The words that may stand before a one-word synonym: "Office phone", "Zultys version".
# Not any word: "MIME-Version", "System Contact", "About the Company" are no labels.
_QUALIFIERS: Final = frozenset(
    {
        "office", "direct", "mobile", "cell", "work", "main", "home", "primary", "backup",
        "alternate", "alternative", "best", "daytime", "business", "contact", "zultys", "mx",
        "current", "installed",
    }
)  # fmt: skip
_MAX_LABEL_TOKENS: Final = 14
_MAX_FREE_LEADING: Final = 2  # "Zultys Serial Number", "Main Contact Phone"
_MAX_CACHE: Final = 4_096
_PAREN: Final = re.compile(r"\(([^()]*)\)")
_NON_WORD: Final = re.compile(r"[^\w/#&]+")


@dataclass(frozen=True, slots=True)
class Synonym:
    field: str  # the canonical field name
    written: str  # the synonym as the policy writes it
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabelMatch:
    """A label read: which field, through which synonym, and the part it names if any."""

    field: str
    synonym: str
    part: str | None = None
    size: int = 1  # words in the synonym: the longer match wins


def fold(text: str) -> str:
    """Case and accents folded: "Téléphone" and "TELEPHONE" compare equal."""
    if text.isascii():  # the common case, and a fast one
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def tokens(text: str) -> tuple[str, ...]:
    """Words of a label: folded, punctuation dropped; "S/N" and a spaced "/" stay words."""
    folded = fold(text).replace("#", " # ").replace("_", " ")
    return tuple(word.strip("/") or "/" for word in _NON_WORD.sub(" ", folded).split())


class LabelIndex:
    """Every synonym of every spec, indexed by first word; first spec to claim one keeps it."""

    def __init__(self, specs: Sequence[FieldSpec]) -> None:
        self._by_first: dict[str, list[Synonym]] = {}
        self._parts: dict[str, dict[str, str]] = {}
        self._cache: dict[str, LabelMatch | None] = {}
        claimed: set[tuple[str, ...]] = set()
        for spec in specs:
            self._parts[spec.name] = {
                word: part.name
                for part in spec.parts
                for phrase in part.words
                for word in tokens(phrase)
            }
            for written in (*spec.synonyms, spec.name.replace("_", " ")):
                words = tokens(written)
                if not words or words in claimed:
                    continue
                claimed.add(words)
                self._by_first.setdefault(words[0], []).append(Synonym(spec.name, written, words))

    def synonyms(self) -> Iterable[Synonym]:
        for group in self._by_first.values():
            yield from group

    def part_words(self, field: str) -> dict[str, str]:
        return self._parts.get(field, {})

    def match(self, label: str) -> LabelMatch | None:
        """The best synonym the label text is, with qualifiers and extra words tolerated."""
        if label in self._cache:
            return self._cache[label]
        found = self._match(label)
        if len(self._cache) < _MAX_CACHE:  # the same labels repeat down a long mail
            self._cache[label] = found
        return found

    def _match(self, label: str) -> LabelMatch | None:
        qualifiers = [w for inner in _PAREN.findall(label) for w in tokens(inner)]
        words = tokens(_PAREN.sub(" ", label))
        if not words or len(words) + len(qualifiers) > _MAX_LABEL_TOKENS:
            return None
        best: tuple[int, int, Synonym] | None = None
        for start in range(min(len(words), _MAX_FREE_LEADING + 1)):
            for synonym in self._by_first.get(words[start], ()):
                size = len(synonym.tokens)
                if words[start : start + size] != synonym.tokens:
                    continue
                if not self._fits(words[:start], words[start + size :], synonym, len(words)):
                    continue
                if best is None or (size, -start) > (best[0], best[1]):
                    best = (size, -start, synonym)
        if best is None:
            return None
        synonym = best[2]
        start, size = -best[1], best[0]
        around = (*words[:start], *words[start + size :], *qualifiers)
        return LabelMatch(synonym.field, synonym.written, self._part(synonym.field, around), size)

    def _fits(
        self, lead: tuple[str, ...], tail: tuple[str, ...], synonym: Synonym, total: int
    ) -> bool:
        parts = self.part_words(synonym.field)
        free = [w for w in lead if w not in _FILLERS and w not in parts]
        # Before a one-word synonym only a known qualifier ("Office phone"); before a
        # multi-word one up to two words ("Zultys Serial Number"); fillers and part
        # words always.
        if len(synonym.tokens) == 1:
            if len(free) > 1 or total > 3 or any(w not in _QUALIFIERS for w in free):
                return False
        elif len(free) > _MAX_FREE_LEADING:
            return False
        if not tail or tail[0] in _CONNECTORS:
            return True
        return all(word in _NOUNS or word in parts for word in tail)

    def _part(self, field: str, words: Iterable[str]) -> str | None:
        """The one part the qualifiers name; none when they name several (the whole field)."""
        parts = self.part_words(field)
        named = {parts[word] for word in words if word in parts}
        return named.pop() if len(named) == 1 else None

    def mentions(self, line: str) -> list[Synonym]:
        """Synonyms that occur anywhere in ``line`` (prose that names a field)."""
        words = tokens(line)
        found: list[Synonym] = []
        for start, word in enumerate(words):
            for synonym in self._by_first.get(word, ()):
                if words[start : start + len(synonym.tokens)] == synonym.tokens:
                    found.append(synonym)
        return found


@functools.lru_cache(maxsize=64)
def label_index(specs: tuple[FieldSpec, ...]) -> LabelIndex:
    """The index for these specs, built once: a policy's specs are immutable values, and
    building the index (folding every synonym) cost ~5 % of a ticket (issue 11). The match
    cache it carries holds only pure results, bounded by ``_MAX_CACHE``."""
    return LabelIndex(specs)
