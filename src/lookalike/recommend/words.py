"""Words: what a shopper types ("red floral dress under 50", "this, but in navy") turned into
what the catalog understands — filters and steering directions — using the catalog's own
vocabulary.

No text encoder of the CLIP kind is installable here (no such model ships in a package that can
be installed offline), so text is not embedded; it is *mapped*. `CatalogVocabulary` reads the
values the catalog has (categories, colours by canonical name, brands, and every attribute of
`Settings.tag_attributes`: pattern, usage, gender, season...) and matches the words against
them:

* case, accents and punctuation do not matter (`Crème`, `T-Shirts`, `men's`);
* plural and singular are one word (`dresses` = `Dress`, `jeans` = `Jeans`);
* synonyms: the colour table of `lookalike.colour_names` (`navy blue` = `navy`) and a small
  fashion table below (`tee` = `T-Shirt`, `jumper` = `Sweater`, `office` = `Formal`...), each
  used only for values the catalog has;
* fuzzy: a word of 4+ letters that matches nothing is compared with difflib
  (`difflib.SequenceMatcher`, the standard library; rapidfuzz is not installed) and taken when
  the ratio is at least `FUZZY_CUTOFF` (`dres` → `Dress`, `flral` → `floral`);
* phrases: prices (`under 50`, `between 20 and 40 €`, `30 or more`, `cheap` = at most the
  catalog's median price), condition (`second hand`, `used`, `vintage`, `brand new`),
  `sustainable`/`eco` (sustainability 4+ of 5), `kids`/`adults`, `size M`;
* `not`/`no`/`without` before a word steers away from it (never a filter).

Words it cannot map are reported (`TextIntent.ignored`), never dropped silently; small words
(`a`, `the`, `in`, `but`...) are listed apart (`TextIntent.skipped`).

`TextEncoder` is the interface: anything with `encode_text(text) -> TextIntent`. A CLIP-like
model would return a `TextIntent` whose `vector` is the text's embedding in the catalog's image
space (and may leave filters empty); `search_text` then ranks by that vector. Today's
implementation, `CatalogVocabulary`, leaves `vector` None.

How the intent is used (`search_text`):

* **text only**: every understood word narrows (filters: "dress" keeps dresses, "red" keeps red
  items), and the items left are ranked by a *prototype*: the mean embedding of the items the
  filters keep (the most typical red dress first, items whose predicted tag is an outlier
  last), plus the steering directions of the appearance words (colour, pattern, usage...), so
  the most distinctly red ones rise. No filter (only "not black") ranks by steering alone.
* **with a photo**: the photo says what it should look like; the words say what to change.
  Constraints (category, brand, size, price, condition, kids, sustainability) filter;
  appearance words (colour, pattern, usage, gender, season...) *steer* the photo query
  (`Settings.text_steer_strength`) and do not filter: the tagger's colour is right about 6
  times in 10 on consumer photos (docs/words-and-attributes.md), so a hard "red" filter would
  drop red look-alikes it mislabelled and keep wrong ones, while steering re-ranks the
  look-alikes so the red ones come first and the list never empties.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from lookalike.attributes.directions import catalog_version, directions_for
from lookalike.attributes.probe import IGNORED_VALUES
from lookalike.catalog import Catalog, Filters, Result
from lookalike.catalog.filters import LIST_FIELDS
from lookalike.colour_names import CANONICAL_COLOURS, SYNONYMS, canonical_colour, normalise_words
from lookalike.errors import LookalikeError
from lookalike.images import ImageSource
from lookalike.recommend.query import Query, recommend

__all__ = [
    "FUZZY_CUTOFF",
    "CatalogVocabulary",
    "Match",
    "TextEncoder",
    "TextIntent",
    "TextSearch",
    "TextTooLongError",
    "describe",
    "merge_filters",
    "search_text",
]

FUZZY_CUTOFF = 0.85
MIN_FUZZY_LETTERS = 4
MAX_FUZZY_LOOKUPS = 12  # per text: fuzzy matching is the costly part
MAX_PHRASE_WORDS = 4
SUSTAINABLE_MIN = 4.0  # "sustainable": 4 of 5 and up ("good" on a Good On You-like scale)
PROTOTYPE_ITEMS = 2000  # items averaged into a text-only query's prototype, at most

#: Fields whose words constrain (filter) even beside a photo; every other matched attribute is
#: appearance and steers a photo query.
CONSTRAINTS = frozenset({"category", "brand", "size", "price_min", "price_max", "second_hand",
                         "kids", "min_sustainability"})
#: Which field wins when one word names values of several (e.g. "Dress" as a category and a
#: sub_category); attributes not listed come after these, brands last.
PRIORITY = ("category", "colour", "pattern", "usage", "gender", "department", "style",
            "occasion", "season", "material", "fit", "sub_category")

#: Fashion words that mean one thing. A group applies to a catalog value whose words are one of
#: its members (singular, lower case); every other member then finds that value too.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("t shirt", "tshirt", "tee", "tee shirt"),
    ("trouser", "pant", "slack"),
    ("sweater", "jumper", "pullover", "knit", "knitwear"),
    ("hoody", "hooded sweatshirt", "hooded top"),
    ("shoe", "footwear", "sneaker", "trainer"),
    ("dress", "frock", "gown"),
    ("jean", "denim"),
    ("hat", "cap", "beanie"),
    ("outwear", "outerwear"),
    ("blazer", "sport coat", "suit jacket"),
    ("top", "blouse"),
    ("short", "short pant"),
    ("legging", "tight"),
    ("formal", "office", "business", "work", "smart"),
    ("casual", "everyday", "relaxed", "laid back"),
    ("sport", "sporty", "gym", "athletic", "running", "workout", "training", "activewear"),
    ("ethnic", "traditional"),
    ("party", "evening", "night out", "festive", "cocktail", "going out"),
    ("men", "man", "male", "gent", "gentleman"),
    ("women", "woman", "female", "lady"),
    ("boy",),
    ("girl",),
    ("fall", "autumn", "autumnal"),
    ("summer", "summery"),
    ("winter", "wintry"),
    ("stripe", "striped", "stripy", "pinstripe"),
    ("checked", "check", "plaid", "tartan", "checkered", "gingham"),
    ("printed", "print", "graphic", "patterned"),
    ("solid", "plain", "block colour"),
    ("floral", "flower", "flowery", "flowered", "botanical"),
)
STOPWORDS = frozenset({
    "a", "an", "the", "in", "on", "at", "with", "for", "and", "or", "but", "this", "that",
    "these", "those", "it", "its", "like", "similar", "something", "some", "any", "i", "im", "me",
    "my", "we", "our", "you", "your", "want", "need", "looking", "look", "find", "show", "give",
    "get", "to", "of", "by", "as", "more", "less", "please", "style", "colour", "color",
    "coloured", "colored", "one", "ones", "item", "items", "clothes", "clothing", "outfit",
    "wear", "piece", "pair", "also", "just", "very", "really", "same", "kind", "sort", "type",
})
NEGATORS = frozenset({"not", "no", "without", "non", "except", "excluding", "avoid"})
KIDS = {"kid": True, "child": True, "children": True, "childrens": True, "baby": True,
        "toddler": True, "junior": True, "adult": False}
CHEAP = frozenset({"cheap", "cheaper", "cheapest", "budget", "affordable", "inexpensive",
                   "bargain", "low cost"})

_NUM = r"(\d{1,9}(?:[.,]\d{1,2})?)"
_CUR = r"(?:[€$£]|(?:euros?|eur|usd|dollars?|gbp|pounds?|inr|rs)\b)"
_AMOUNT = rf"(?:{_CUR}\s?)?{_NUM}(?:\s?{_CUR})?"
#: (pattern, what it sets). Applied in this order to the lower-cased text; each match is cut out.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), what) for p, what in (
        (rf"\b(?:between|from)\s+{_AMOUNT}\s*(?:and|to|-|–)\s*{_AMOUNT}", "price_range"),
        (rf"(?:\b(?:under|below|less than|cheaper than|max(?:imum)?|up to|at most|"
         rf"no more than)\s+|[<≤]=?\s?){_AMOUNT}", "price_max"),
        (rf"{_AMOUNT}\s+(?:or less|or under|or below|max(?:imum)?)\b", "price_max"),
        (rf"(?:\b(?:over|above|more than|at least|min(?:imum)?|from|starting at)\s+|[>≥]=?\s?)"
         rf"{_AMOUNT}", "price_min"),
        (rf"{_AMOUNT}\s*(?:or more|and up|and above|plus\b|\+)", "price_min"),
        (r"\b(?:not|no)\s+(?:second[\s-]?hand|2nd[\s-]?hand|used|pre[\s-]?owned|pre[\s-]?loved)\b",
         "new"),
        (r"\b(?:brand[\s-]new|new only|only new|unworn|new with tags)\b", "new"),
        (r"\b(?:second[\s-]?hand|2nd[\s-]?hand|used|pre[\s-]?owned|pre[\s-]?loved|thrifted|"
         r"thrift|vintage|resale)\b", "second_hand"),
        (r"\b(?:sustainable|sustainably made|eco[\s-]?friendly|eco|ethical|ethically made|"
         r"organic|responsible|conscious|fair trade)\b", "sustainable"),
        (r"\bsize\s+(xxs|xs|s|m|l|xl|xxl|xxxl|one size|\d{1,2}(?:[.,]5)?)\b", "size"),
    )
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


class TextTooLongError(LookalikeError):
    """A search text longer than `Settings.text_max_chars`."""


@dataclass(frozen=True)
class Match:
    """One phrase of the text and what it was understood as."""

    phrase: str  # the words as typed (normalised)
    field: str  # category, colour, brand, pattern, usage..., price_max, second_hand, size...
    values: tuple[str, ...]  # catalog values (or the number / true / false)
    how: str  # exact, plural, synonym, fuzzy, phrase
    score: float = 1.0  # fuzzy matches: the difflib ratio
    negated: bool = False

    def describe(self) -> str:
        sign = "not " if self.negated else ""
        how = f"{self.how} {self.score:.2f}" if self.how == "fuzzy" else self.how
        return f"'{self.phrase}' → {sign}{self.field}={'|'.join(self.values)} ({how})"


@dataclass(frozen=True)
class TextIntent:
    """What a text asks for. `filters` hold every understood constraint and appearance value
    (what a text-only search applies); `steer` the directions of the appearance words
    (negated words with a negative strength); `vector` a text embedding from an encoder that
    has one (None for the vocabulary mapper)."""

    text: str
    filters: Filters
    steer: dict[str, float]
    matches: tuple[Match, ...] = ()
    ignored: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    vector: NDArray[np.float32] | None = None

    def understood(self) -> bool:
        return bool(self.matches) or self.vector is not None

    def photo_filters(self) -> Filters:
        """The filters beside a photo: the constraints only (appearance words steer)."""
        data = self.filters.model_dump()
        for name in ("colour", "attributes"):
            data.pop(name)
        return Filters.model_validate(data)


@runtime_checkable
class TextEncoder(Protocol):
    """Turns a search text into intent. `CatalogVocabulary` maps words onto a catalog's
    values; a CLIP-like text encoder would set `TextIntent.vector` instead (see the module
    docstring and docs/words-and-attributes.md)."""

    name: str

    def encode_text(self, text: str) -> TextIntent: ...


def _stem(word: str) -> str:
    """One key for the singular and plural of an English word (`dresses`, `dress` → `dress`;
    `hoodies`, `hoodie` → `hoody`)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("ie"):
        return word[:-2] + "y"
    return word


def _light(text: str) -> str:
    """Lower case, accents and apostrophes off, hyphens kept (`20-50`, `second-hand`)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace("'", "").replace("’", "").split())


def _words(text: str) -> list[str]:
    """Normalised words, apostrophes dropped (`men's` → `mens`)."""
    return [w.replace("'", "") for w in _WORD.findall(normalise_words(text))]


def _key(words: Iterable[str]) -> str:
    return " ".join(_stem(w) for w in words)


@dataclass
class _Entry:
    field: str
    value: str
    how: str


class CatalogVocabulary:
    """Today's `TextEncoder`: the catalog's own values, matched word by word (see the module
    docstring). Build one with `CatalogVocabulary.of(catalog)` (cached until the catalog
    changes)."""

    name = "vocabulary"

    def __init__(
        self,
        values: dict[str, list[str]],
        directions: Iterable[str] = (),
        median_price: float | None = None,
        max_chars: int = 200,
        fuzzy_cutoff: float = FUZZY_CUTOFF,
    ) -> None:
        self.values = values
        self.directions = set(directions)
        self.median_price = median_price
        self.max_chars = max_chars
        self.fuzzy_cutoff = fuzzy_cutoff
        self._index: dict[str, list[_Entry]] = {}
        for fld, vals in values.items():
            for value in vals:
                self._add_value(fld, value)
        # fuzzy candidates: one-word keys by length (a word is only compared with keys of
        # about its length), and compact forms of several-word keys (`tshirt`)
        self._by_length: dict[int, list[str]] = {}
        for key in self._index:
            self._by_length.setdefault(len(key), []).append(key)

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogVocabulary:
        """The vocabulary of `catalog`, rebuilt when its items change."""
        version = catalog_version(catalog)
        with _lock:
            hit = _cache.get(id(catalog))
            if hit is not None and hit[0] == version:
                return hit[1]
        fresh = cls.from_catalog(catalog)
        with _lock:
            _cache[id(catalog)] = (version, fresh)
        return fresh

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> CatalogVocabulary:
        names = [*LIST_FIELDS, *catalog.settings.tag_attributes]
        values: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            if name == "size":  # sizes only after the word "size" (a phrase)
                continue
            found = [v for v, _ in catalog.store.values(name)
                     if v.strip().lower() not in IGNORED_VALUES]
            if found:
                values[name] = found
        with catalog.store.connection() as conn:
            prices = [r[0] for r in conn.execute(
                "SELECT price_base FROM items WHERE price_base IS NOT NULL AND state != 'sold' "
                "ORDER BY random() LIMIT 5000")]
        median = float(np.median(prices)) if prices else None
        return cls(values, directions_for(catalog).names(), median,
                   catalog.settings.text_max_chars)

    # -- building ---------------------------------------------------------------------------

    def _put(self, key: str, entry: _Entry) -> None:
        if not key:
            return
        entries = self._index.setdefault(key, [])
        same = next((e for e in entries if e.field == entry.field and e.value == entry.value),
                    None)
        if same is None:
            entries.append(entry)
        elif entry.how == "exact":
            same.how = "exact"

    def _add_value(self, fld: str, value: str) -> None:
        words = _words(value)
        if not words:
            return
        key = _key(words)
        self._put(key, _Entry(fld, value, "exact"))
        if len(words) > 1:
            self._put(_key(["".join(words)]), _Entry(fld, value, "exact"))  # `tshirt`
        if fld == "colour":
            for syn in (canonical_colour(value), *SYNONYMS.get(canonical_colour(value), ())):
                self._put(_key(_words(syn)), _Entry(fld, value, "synonym"))
        for group in SYNONYM_GROUPS:
            if key in (_key(m.split()) for m in group):
                for member in group:
                    self._put(_key(member.split()), _Entry(fld, value, "synonym"))

    # -- reading ----------------------------------------------------------------------------

    def _lookup(self, words: list[str]) -> list[_Entry] | None:
        entries = self._index.get(_key(words))
        if entries is None and len(words) > 1:
            entries = self._index.get(_key(["".join(words)]))
        return entries

    def _fuzzy(self, word: str) -> tuple[list[_Entry], float] | None:
        """The closest key to `word` (or its singular) with a difflib ratio ≥ the cutoff."""
        best: tuple[float, str] | None = None
        for form in dict.fromkeys((word, _stem(word))):
            candidates = [k for n in range(len(form) - 2, len(form) + 3)
                          for k in self._by_length.get(n, ()) if len(k) >= MIN_FUZZY_LETTERS]
            for close in difflib.get_close_matches(form, candidates, n=1,
                                                   cutoff=self.fuzzy_cutoff):
                ratio = difflib.SequenceMatcher(None, form, close).ratio()
                if best is None or ratio > best[0]:
                    best = (ratio, close)
        return None if best is None else (self._index[best[1]], best[0])

    @staticmethod
    def _best(entries: list[_Entry]) -> tuple[str, list[_Entry]]:
        """The entries of the field that wins (`PRIORITY`; brands last)."""
        def rank(fld: str) -> int:
            if fld in PRIORITY:
                return PRIORITY.index(fld)
            return len(PRIORITY) + (1 if fld == "brand" else 0)

        fld = min((e.field for e in entries), key=rank)
        return fld, [e for e in entries if e.field == fld]

    def encode_text(self, text: str) -> TextIntent:
        """Map `text` onto this vocabulary (at most `max_chars` characters)."""
        if len(text) > self.max_chars:
            raise TextTooLongError(
                f"text: at most {self.max_chars} characters, got {len(text)}")
        matches: list[Match] = []
        notes: list[str] = []
        rest = self._phrases(_light(text), matches, notes)
        words = _words(rest)
        ignored: list[str] = []
        skipped: list[str] = []
        negate = False
        fuzzy_left = MAX_FUZZY_LOOKUPS
        i = 0
        while i < len(words):
            word = words[i]
            if word in NEGATORS:
                negate = True
                skipped.append(word)
                i += 1
                continue
            found: tuple[int, list[_Entry], str, float] | None = None
            for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                entries = self._lookup(words[i:i + n])
                if entries:
                    typed = words[i:i + n]
                    plural = any(w.endswith("s") and _stem(w) != w for w in typed)
                    how = "plural" if plural else "exact"
                    found = (n, entries, how, 1.0)
                    break
            if found is None and word in STOPWORDS:
                skipped.append(word)
                i += 1
                continue
            if found is None and _stem(word) in KIDS:
                matches.append(Match(word, "kids", (str(KIDS[_stem(word)]).lower(),), "phrase"))
                i += 1
                continue
            if found is None and word in CHEAP:
                self._cheap(word, matches, notes)
                i += 1
                continue
            if found is None and len(word) >= MIN_FUZZY_LETTERS and fuzzy_left > 0:
                fuzzy_left -= 1
                close = self._fuzzy(word)
                if close is not None:
                    found = (1, close[0], "fuzzy", close[1])
            if found is None:
                ignored.append(word)
                colour = canonical_colour(word)
                if colour in CANONICAL_COLOURS:
                    notes.append(f"'{word}': no item has colour {colour!r}")
                i += 1
                continue
            n, entries, how, score = found
            fld, chosen = self._best(entries)
            if how != "fuzzy" and any(e.how == "synonym" for e in chosen) and not any(
                    e.how == "exact" for e in chosen):
                how = "synonym"
            values = tuple(dict.fromkeys(e.value for e in chosen))
            matches.append(Match(" ".join(words[i:i + n]), fld, values, how, round(score, 3),
                                 negate))
            negate = False
            i += n
        filters, steer = self._intent(matches, notes)
        return TextIntent(text, filters, steer, tuple(matches), tuple(ignored), tuple(skipped),
                          tuple(notes))

    def _cheap(self, word: str, matches: list[Match], notes: list[str]) -> None:
        if self.median_price is None:
            notes.append(f"'{word}': no item has a price")
            return
        matches.append(Match(word, "price_max", (f"{self.median_price:g}",), "phrase"))
        notes.append(f"'{word}' = at most the catalog's median price, {self.median_price:g}")

    def _phrases(self, text: str, matches: list[Match], notes: list[str]) -> str:
        """Price, condition, sustainability and size phrases: matched, then cut out."""
        for pattern, what in _PHRASES:
            def take(m: re.Match[str], what: str = what) -> str:
                phrase = m.group(0).strip()
                if what == "price_range":
                    low, high = sorted((_number(m.group(1)), _number(m.group(2))))
                    matches.append(Match(phrase, "price_min", (f"{low:g}",), "phrase"))
                    matches.append(Match(phrase, "price_max", (f"{high:g}",), "phrase"))
                elif what in ("price_min", "price_max"):
                    number = next(g for g in m.groups() if g is not None)
                    matches.append(Match(phrase, what, (f"{_number(number):g}",), "phrase"))
                elif what in ("second_hand", "new"):
                    matches.append(Match(phrase, "second_hand",
                                         ("true" if what == "second_hand" else "false",), "phrase"))
                elif what == "sustainable":
                    matches.append(Match(phrase, "min_sustainability", (f"{SUSTAINABLE_MIN:g}",),
                                         "phrase"))
                elif what == "size":
                    matches.append(Match(phrase, "size", (m.group(1).upper(),), "phrase"))
                return " "

            text = pattern.sub(take, text)
        return text

    def _intent(self, matches: list[Match], notes: list[str]) -> tuple[Filters, dict[str, float]]:
        data: dict[str, object] = {}
        attributes: dict[str, list[str]] = {}
        steer: dict[str, float] = {}
        for m in matches:
            appearance = m.field not in CONSTRAINTS
            if appearance:
                for value in m.values:
                    name = f"{m.field}:{canonical_colour(value) if m.field == 'colour' else value}"
                    if name in self.directions:
                        steer[name] = -1.0 if m.negated else 1.0
                    elif m.negated:
                        notes.append(f"'{m.phrase}': no steering direction {name} (too few "
                                     "items), so it could not be avoided")
            if m.negated:
                continue
            if m.field in LIST_FIELDS:
                have = data.setdefault(m.field, [])
                assert isinstance(have, list)
                have.extend(v for v in m.values if v not in have)
            elif m.field in ("price_min", "price_max", "min_sustainability"):
                data[m.field] = float(m.values[0])
            elif m.field in ("second_hand", "kids"):
                data[m.field] = m.values[0] == "true"
            else:
                have_values = attributes.setdefault(m.field, [])
                have_values.extend(v for v in m.values if v not in have_values)
        low, high = data.get("price_min"), data.get("price_max")
        if isinstance(low, float) and isinstance(high, float) and low > high:
            notes.append(f"price: at least {low:g} and at most {high:g} cannot both hold; "
                         "the lower bound is left out")
            data.pop("price_min")
        return Filters.model_validate({**data, "attributes": attributes}), steer


_cache: dict[int, tuple[tuple[object, ...], CatalogVocabulary]] = {}
_lock = threading.Lock()


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def merge_filters(given: Filters, words: Filters) -> tuple[Filters, list[str]]:
    """`given` filters (a form, -f options) with the ones words asked for. A field both set is
    kept as given (and said so); price bounds take the tighter of the two."""
    notes: list[str] = []
    data = given.model_dump()
    for name, value in words.model_dump(exclude_defaults=True).items():
        mine = data.get(name)
        if name == "attributes":
            assert isinstance(mine, dict)
            for attr, values in value.items():
                if attr in mine and mine[attr] != values:
                    notes.append(f"{attr}: the filter's {mine[attr]} kept over the words' "
                                 f"{values}")
                mine.setdefault(attr, values)
        elif value in (None, []):
            continue
        elif mine in (None, []):
            data[name] = value
        elif name == "price_max":
            data[name] = min(mine, value)
        elif name == "price_min" or name.startswith("min_"):
            data[name] = max(mine, value)
        elif mine != value:
            notes.append(f"{name}: the filter's {mine} kept over the words' {value}")
    try:
        return Filters.model_validate(data), notes
    except ValueError:  # e.g. a price_min above the price_max after merging
        notes.append("the words' price bounds contradict the filters'; the words' are left out")
        return given, notes


@dataclass(frozen=True)
class TextSearch:
    """Results of a search with words, and what the words were understood as: the `filters`
    and `steer` applied (words merged with the request's own), and notes."""

    results: list[Result]
    intent: TextIntent
    filters: Filters
    steer: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def understood(self) -> dict[str, object]:
        """What the words were understood as, in plain data (JSON, the API's `understood`):
        the filters and steering applied, each matched phrase, the words ignored, notes."""
        return {
            "filters": self.filters.model_dump(mode="json", exclude_defaults=True),
            "steer": dict(self.steer),
            "matches": [{"phrase": m.phrase, "field": m.field, "values": list(m.values),
                         "how": m.how, "score": m.score, "negated": m.negated}
                        for m in self.intent.matches],
            "ignored": list(self.intent.ignored),
            "notes": list(self.notes),
        }


def _prototype(catalog: Catalog, filters: Filters, seed: int = 0) -> NDArray[np.float32] | None:
    """Mean embedding of (at most `PROTOTYPE_ITEMS` of) the items `filters` keep."""
    rowids = catalog.store.filter_rowids(filters)
    if len(rowids) == 0:
        return None
    if len(rowids) > PROTOTYPE_ITEMS:
        rowids = np.sort(np.random.default_rng(seed).choice(rowids, PROTOTYPE_ITEMS,
                                                            replace=False))
    vectors = catalog.index.vectors(rowids)
    if len(vectors) == 0:
        return None
    mean: NDArray[np.float32] = vectors.mean(axis=0).astype(np.float32)
    return mean


def search_text(
    catalog: Catalog,
    text: str,
    k: int = 10,
    filters: Filters | None = None,
    *,
    photo: ImageSource | None = None,
    query: Query | None = None,
    encoder: TextEncoder | None = None,
    strength: float | None = None,
    offset: int = 0,
    sort: str = "relevance",
) -> TextSearch:
    """Search with words, alone or beside a photo (see the module docstring for which words
    filter and which steer, and how a text-only query is ranked). `query` may carry examples,
    steering, colour weight and diversity of its own; `encoder` defaults to the catalog's
    vocabulary; `offset` and `sort` page and order the results as in `recommend`."""
    encoder = encoder or CatalogVocabulary.of(catalog)
    intent = encoder.encode_text(text)
    strength = catalog.settings.text_steer_strength if strength is None else strength
    query = query or Query()
    notes = list(intent.notes)
    with_photo = photo is not None or bool(query.positives)
    words_filters = intent.photo_filters() if with_photo else intent.filters
    merged, clashes = merge_filters(filters or Filters(), words_filters)
    notes += clashes
    steer = dict(query.steer)
    for name, sign in intent.steer.items():
        steer.setdefault(name, sign * strength)
    query.steer = steer
    if photo is not None:
        query.add_photo(catalog, photo)
    if intent.vector is not None:
        query.positives.append(intent.vector)
        if query.positive_weights is not None:
            query.positive_weights.append(1.0)
    elif not query.positives and not merged.is_empty():
        proto = _prototype(catalog, merged)
        if proto is not None:
            query.positives.append(proto)
    if not query.positives and not query.steer:
        if not intent.understood():
            notes.append("none of the words matched this catalog"
                         + (f"; ignored: {', '.join(repr(w) for w in intent.ignored)}"
                            if intent.ignored else ""))
        else:
            notes.append("no item passes these filters")
        return TextSearch([], intent, merged, steer, notes)
    results = recommend(catalog, query, k, merged, offset=offset, sort=sort)
    return TextSearch(results, intent, merged, steer, notes)


def describe(intent: TextIntent) -> list[str]:
    """Lines saying what was understood and what was not (for the CLI)."""
    lines = [f"understood {m.describe()}" for m in intent.matches]
    if intent.ignored:
        lines.append("ignored: " + ", ".join(repr(w) for w in intent.ignored))
    lines += [f"note: {n}" for n in intent.notes]
    return lines

