"""Attribute taggers (colour from pixels, category/pattern probes on embeddings) and the
attribute directions used for steering."""

from lookalike.attributes.colour import (
    COLOUR_NAMES,
    ColourTagger,
    colour_palette,
    colour_similarity,
    format_palette,
    parse_palette,
)
from lookalike.attributes.directions import AttributeDirections, directions_for
from lookalike.attributes.probe import LinearProbe, ProbeTagger, load_probe, train_probe
from lookalike.attributes.taggers import (
    TagReport,
    default_taggers,
    tag_catalog,
    train_probes,
)

__all__ = [
    "COLOUR_NAMES",
    "AttributeDirections",
    "ColourTagger",
    "LinearProbe",
    "ProbeTagger",
    "TagReport",
    "colour_palette",
    "colour_similarity",
    "default_taggers",
    "directions_for",
    "format_palette",
    "load_probe",
    "parse_palette",
    "tag_catalog",
    "train_probe",
    "train_probes",
]
