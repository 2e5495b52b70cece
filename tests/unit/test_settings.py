"""Every knob of `Settings` says what it does: the configuration reference is generated from
these descriptions (docs/_hooks/reference.py), and a knob without one is a knob nobody can use."""

from __future__ import annotations

import re

from lookalike.config import Settings


def test_every_setting_has_a_description() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not (f.description or "")]
    assert missing == []


def test_descriptions_hold_no_measurement_history() -> None:
    """Measurements belong in the docs (benchmarks, development notes), not in a knob's text:
    no milliseconds, images per second, dates or issue numbers."""
    history = re.compile(r"\d\s*ms\b|img/s|images/s|\b20\d\d-\d\d|\bissue \d|P@10")
    found = {name: f.description for name, f in Settings.model_fields.items()
             if history.search(f.description or "")}
    assert found == {}
