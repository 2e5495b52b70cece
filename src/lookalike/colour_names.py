"""Colour names as shoppers and catalogs write them, merged: `navy`, `Navy Blue` and `dark blue`
are one colour (`navy`); `grey` and `gray` one (`grey`); `off-white`, `Off White` and `ivory`
one (`off white`).

Every colour name has one *canonical* name: the colour tagger's 13 names (`black` ... `purple`)
and the shades catalogs use beside them (`maroon`, `olive`, `cream`...). A name this table does
not know is its own canonical name, normalised (lower case, accents, hyphens and underscores
off): `Coral` → `coral`. Filters, facets, attribute directions and the words of a text search
all compare colours by canonical name, so `colour=navy blue` finds the items a catalog calls
`Navy Blue` and those the tagger called `navy`.

Shades are not folded into their families: `red` does not find `maroon` (a shopper asking for
maroon does not want every red; one asking for red sees what the catalog calls red).

Pure standard library: `lookalike.catalog.filters` imports it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "CANONICAL_COLOURS",
    "canonical_colour",
    "colour_sql",
    "colour_variants",
    "normalise_words",
]

#: canonical name → other names for the same colour (normalised: lower case, spaces).
SYNONYMS: dict[str, tuple[str, ...]] = {
    # the colour tagger's names (lookalike.attributes.colour.COLOUR_NAMES)
    "black": ("jet black", "noir"),
    "grey": ("gray", "grey melange", "gray melange", "heather grey", "heather gray",
             "light grey", "light gray", "ash grey", "ash gray"),
    "white": ("optic white", "bright white", "pure white", "snow white"),
    "beige": ("sand", "nude", "stone", "skin", "taupe"),
    "brown": ("chocolate", "coffee", "dark brown", "mocha"),
    "red": ("scarlet", "crimson", "bright red", "cherry"),
    "pink": ("rose", "blush", "light pink", "baby pink", "dusty pink", "hot pink"),
    "orange": ("tangerine", "bright orange"),
    "yellow": ("lemon", "canary"),
    "green": ("sea green", "emerald", "forest green", "bottle green", "dark green",
              "light green", "lime", "lime green", "mint", "mint green"),
    "blue": ("light blue", "sky blue", "royal blue", "cobalt", "cobalt blue", "baby blue",
             "bright blue", "mid blue", "powder blue"),
    "navy": ("navy blue", "dark blue", "midnight blue", "midnight", "marine", "dark navy"),
    "purple": ("violet", "plum", "aubergine", "eggplant"),
    # shades catalogs name beside them
    "charcoal": ("charcoal grey", "charcoal gray", "dark grey", "dark gray", "anthracite"),
    "off white": ("offwhite", "ecru", "ivory", "eggshell"),
    "cream": ("creme", "vanilla"),
    "maroon": ("burgundy", "wine", "wine red", "oxblood", "bordeaux", "claret"),
    "magenta": ("fuchsia", "fushia"),
    "rust": ("terracotta", "burnt orange"),
    "mustard": ("mustard yellow", "ochre"),
    "olive": ("olive green", "army green"),
    "khaki": ("khaki green",),
    "tan": ("camel",),
    "turquoise": ("turquoise blue", "aqua", "aquamarine"),
    "teal": ("teal blue", "petrol", "petrol blue"),
    "lavender": ("lilac",),
    "mauve": ("dusty purple",),
    "peach": ("apricot",),
    "gold": ("golden",),
    "silver": ("metallic silver",),
    "multi": ("multicolour", "multicolor", "multi colour", "multi color", "multicoloured",
              "multicolored", "multi coloured", "multi colored", "multiple colours"),
}
CANONICAL_COLOURS: tuple[str, ...] = tuple(SYNONYMS)

_SPACES = re.compile(r"[\s_\-/]+")


def normalise_words(text: str) -> str:
    """Lower case, accents off (`crème` → `creme`), hyphens, underscores and slashes as
    spaces, one space between words: how names are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", plain.casefold()).strip()


_TO_CANONICAL: dict[str, str] = {
    **{name: name for name in SYNONYMS},
    **{syn: name for name, syns in SYNONYMS.items() for syn in syns},
}
_COMPACT = {key.replace(" ", ""): name for key, name in _TO_CANONICAL.items()}
# names written as one word or with a trailing "colour" are the same name
_TRAILING = re.compile(r"\s+(colou?r(ed)?|shade|tone)$")


@lru_cache(maxsize=4096)
def canonical_colour(name: str) -> str:
    """The canonical name of a colour name (`Navy Blue` → `navy`, `gray` → `grey`); a name the
    table does not know comes back normalised (`Coral` → `coral`)."""
    key = _TRAILING.sub("", normalise_words(name))
    found = _TO_CANONICAL.get(key) or _COMPACT.get(key.replace(" ", ""))
    return found or key


def colour_variants(name: str) -> list[str]:
    """Every normalised name of the colour `name` stands for (its canonical name first):
    what a colour filter compares the items' colours with."""
    canonical = canonical_colour(name)
    names = [canonical, *SYNONYMS.get(canonical, ())]
    return list(dict.fromkeys(names))


def colour_sql(expr: str) -> str:
    """SQL normalising the colour `expr` as `normalise_words` does, minus accents (lower
    case; hyphens, underscores and slashes as spaces). Two-word names stored with two spaces
    do not occur in catalogs, so spaces are not collapsed."""
    return (f"trim(replace(replace(replace(lower({expr}), '-', ' '), '_', ' '), '/', ' '))")
