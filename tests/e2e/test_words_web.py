"""The search box in a real browser (Playwright + Debian chromium) against a real server over
the real-encoder sample: words alone filter the grid and say what they were understood as;
unknown words are shown as ignored; words beside a photo steer it."""

from __future__ import annotations

from typing import Any

import pytest

from lookalike.demo import sample_images

pytestmark = pytest.mark.e2e


def chips(page: Any) -> list[str]:
    found: list[str] = page.eval_on_selector_all("#words-understood .word",
                                                 "els => els.map(e => e.textContent)")
    return found


def search_words(page: Any, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")


def test_words_alone_filter_and_explain(live_server: str, page: Any, shoot: Any) -> None:
    page.goto(live_server + "/")
    page.wait_for_selector("#grid .card")
    search_words(page, "second hand dresses sparkly")
    page.wait_for_selector("#results-h:has-text('Matching your words')")
    page.wait_for_function(
        "() => { const c = [...document.querySelectorAll('#grid .card')];"
        " return c.length > 0 && c.every(e => e.dataset.category === 'Dress')"
        " && document.querySelectorAll('#words-understood .word').length > 0; }"
    )
    assert page.get_attribute("#grid", "aria-busy") == "false"
    got = chips(page)
    assert "second-hand" in got and "category: Dress" in got and "sparkly" in got, got
    assert page.locator("#words-understood .word.ignored").inner_text() == "sparkly"
    assert page.locator("#grid .card .score").count() > 0  # ranked, not a plain listing
    shoot(page, "words-1-text-only")


def test_unknown_words_say_so(live_server: str, page: Any) -> None:
    page.goto(live_server + "/")
    page.wait_for_selector("#grid .card")
    search_words(page, "zzkx qqvv")
    page.wait_for_selector("#words-understood .word.ignored")
    assert chips(page) == ["zzkx", "qqvv"]
    assert "none of the words matched" in page.inner_text("#words-understood")
    assert page.locator("#grid .card").count() == 0


def test_words_beside_a_photo_steer_it(live_server: str, page: Any, shoot: Any) -> None:
    page.goto(live_server + "/")
    photo = next(p for p in sorted(sample_images().iterdir()) if p.suffix == ".jpg")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#results-h:has-text('Look-alikes of your photo')")
    page.wait_for_selector("#grid[aria-busy='false'] .card .score")
    with page.expect_response(lambda r: r.url.endswith("/search")
                              and r.request.method == "POST") as answer:
        page.fill("#q", "this, but in red")  # typing alone searches after a pause
    understood = answer.value.json()["understood"]
    assert understood["steer"] == {"colour:red": 0.8} and understood["filters"] == {}
    page.wait_for_function(
        "() => [...document.querySelectorAll('#words-understood .word')]"
        ".some(e => e.textContent === 'colour: red')"
    )
    assert page.locator("#results-h").inner_text() == "Look-alikes of your photo"
    assert page.locator("#grid .card").count() == 24  # steering re-ranks, it never empties
    shoot(page, "words-2-photo-and-text")
    page.click("#reset")  # the box belongs to the filters form: reset clears it
    page.wait_for_function("() => !document.querySelector('#words-understood .word')")
    assert page.input_value("#q") == ""
