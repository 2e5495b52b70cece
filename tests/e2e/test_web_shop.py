"""Shop features on the shopper's page in a real browser (Playwright + Debian chromium)
against a real server over the sample (issue 21): sort control, brand and size filters, brand
ratings with their source on cards, the reserved badge and sold items, the layout on a phone.
Each test fails without the feature it names."""

from __future__ import annotations

import csv
from typing import Any

import pytest

from lookalike.demo import sample_images, sample_metadata

pytestmark = pytest.mark.e2e


def rows() -> list[dict[str, str]]:
    with sample_metadata().open(newline="") as f:
        return list(csv.DictReader(f))


def first_of(category: str) -> dict[str, str]:
    return next(r for r in rows() if r["category"] == category and r["state"] == "available")


def upload(page: Any, row: dict[str, str]) -> None:
    page.set_input_files("#photo", str(sample_images() / row["image"]))
    page.wait_for_selector("#results-h:has-text('Look-alikes of your photo')")
    page.wait_for_selector("#grid[aria-busy='false'] .card .score")


def settle(page: Any) -> None:
    page.wait_for_function("() => document.querySelector('#grid').getAttribute('aria-busy')"
                           " === 'false' && document.querySelectorAll('#grid .card').length > 0")


def card_data(page: Any, key: str) -> list[str]:
    found: list[str] = page.eval_on_selector_all(
        "#grid .card", f"els => els.map(e => e.dataset.{key} || '')")
    return found


def wait_until_every_card(page: Any, condition: str) -> None:
    """Wait until the grid is settled and `condition` (JS over a card `e`) holds for all."""
    page.wait_for_function(
        "() => { if (document.querySelector('#grid').getAttribute('aria-busy') !== 'false')"
        " return false; const c = [...document.querySelectorAll('#grid .card')];"
        f" return c.length > 0 && c.every(e => {condition}); }}"
    )


def test_sort_by_price_orders_the_look_alikes(live_server: str, page: Any, shoot: Any) -> None:
    page.goto(live_server + "/")
    upload(page, first_of("Dress"))
    before = card_data(page, "id")
    assert page.locator("#sort-help").is_hidden()
    page.select_option("#sort", "price_asc")
    page.wait_for_function(
        "ids => document.querySelector('#grid').getAttribute('aria-busy') === 'false' &&"
        " [...document.querySelectorAll('#grid .card')].map(e => e.dataset.id).join() !=="
        " ids.join()", arg=before)
    settle(page)
    page.click("#load-more")  # the next page continues the same sorted list
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length > 24")
    settle(page)
    prices = [float(p) for p in card_data(page, "basePrice")]
    assert len(prices) == 48 and prices == sorted(prices)
    assert page.locator("#sort-help").is_visible()
    assert "200 closest look-alikes" in page.inner_text("#sort-help")
    shoot(page, "desktop-shop-1-sorted")
    # browsing sorts too (no photo): highest price first
    page.click("#clear-photo")
    page.wait_for_selector("#results-h:has-text('Browse the catalog')")
    page.select_option("#sort", "price_desc")
    wait_until_every_card(page, "true")
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('#grid .card')]"
        ".map(e => Number(e.dataset.basePrice)); return p.every((x, i) => !i || p[i-1] >= x); }")


def test_brand_and_size_filters(live_server: str, page: Any) -> None:
    page.goto(live_server + "/")
    upload(page, first_of("Shoes"))
    option = page.locator("#f-brand option", has_text="Kettle & Loom")
    assert "rated 4.5/5" in option.inner_text()  # the brand menu shows each brand's rating
    page.select_option("#f-brand", "Kettle & Loom")
    wait_until_every_card(page, "e.dataset.brand === 'Kettle & Loom'")
    page.select_option("#f-size", "M")
    wait_until_every_card(page, "e.dataset.brand === 'Kettle & Loom' &&"
                                " e.dataset.sizes.split(';').includes('M')")
    assert "(2 on)" in page.inner_text("#filter-count")
    sizes = page.eval_on_selector_all("#f-size option", "els => els.map(e => e.value)")
    assert sizes.index("XS") < sizes.index("S") < sizes.index("M") < sizes.index("L")


def test_cards_show_the_brand_rating_and_its_source(live_server: str, page: Any) -> None:
    page.goto(live_server + "/")
    page.wait_for_selector("#grid .card")
    page.select_option("#f-brand", "Kettle & Loom")
    wait_until_every_card(page, "e.dataset.brand === 'Kettle & Loom'")
    rating = page.locator("#grid .card .brand-rating").first
    text = rating.inner_text()
    assert "Brand rating 4.5/5" in text and "Demo ratings (invented)" in text
    assert rating.locator("a").get_attribute("href", timeout=10_000) == (
        "https://example.org/demo-ratings/kettle-and-loom")
    assert "planet 5" in (rating.get_attribute("title") or "")
    # an unrated brand shows no rating line
    page.select_option("#f-brand", "Bluefin")
    wait_until_every_card(page, "e.dataset.brand === 'Bluefin'")
    assert page.locator("#grid .card .brand-rating:visible").count() == 0
    # the brand rating filter keeps rated brands of at least that rating
    page.select_option("#f-brand", "")
    page.fill("#f-brand-rating", "4")
    page.dispatch_event("#f-brand-rating", "input")
    wait_until_every_card(page, "['Kettle & Loom', 'Fennmark'].includes(e.dataset.brand)")


def test_reserved_badge_and_sold_items_on_request(live_server: str, page: Any,
                                                  shoot: Any) -> None:
    reserved = next(r for r in rows() if r["state"] == "reserved")
    sold = next(r for r in rows() if r["state"] == "sold")
    page.goto(live_server + "/")
    page.wait_for_selector("#grid .card")
    page.select_option("#f-category", reserved["category"])
    wait_until_every_card(page, f"e.dataset.category === '{reserved['category']}'")
    card = page.locator(f"#grid .card[data-id='{reserved['id']}']")
    assert card.locator(".state").inner_text().lower() == "reserved"
    assert card.locator(".state").is_visible()
    assert page.locator("#grid .card[data-state='available'] .state:visible").count() == 0
    # sold items only when asked for, with their badge
    page.select_option("#f-category", sold["category"])
    wait_until_every_card(page, f"e.dataset.category === '{sold['category']}'")
    assert page.locator(f"#grid .card[data-id='{sold['id']}']").count() == 0
    page.check("#f-include-sold")
    page.wait_for_selector(f"#grid .card[data-id='{sold['id']}'] .state:has-text('sold')")
    shoot(page, "desktop-shop-2-states")


def test_shop_controls_fit_a_phone(live_server: str, phone: Any, shoot: Any) -> None:
    phone.goto(live_server + "/")
    phone.wait_for_selector("#grid .card")
    upload(phone, first_of("Dress"))
    phone.select_option("#sort", "brand_rating")
    settle(phone)
    phone.wait_for_selector("#grid .card .brand-rating:visible")
    fits = ("() => document.documentElement.scrollWidth <= window.innerWidth && "
            "[...document.querySelectorAll('#sort, .card .brand-rating, .card .meta')]"
            ".every(e => e.getBoundingClientRect().right <= window.innerWidth)")
    assert phone.evaluate(fits)
    phone.locator("#results-h").scroll_into_view_if_needed()
    shoot(phone, "phone-shop-1-sorted")
    phone.click("#filters-box > summary")
    for control in ("#f-brand", "#f-size", "#f-brand-rating", "#f-include-sold"):
        box = phone.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    shoot(phone, "phone-shop-2-filters")


def test_words_search_sorts_and_pages_like_a_photo_search(live_server: str, page: Any) -> None:
    # the words box (GET /search/text) takes the sort control and its pages reach the bound
    page.goto(live_server + "/")
    page.wait_for_selector("#grid .card")
    page.fill("#q", "dresses")
    page.press("#q", "Enter")
    page.wait_for_selector("#results-h:has-text('Matching your words')")
    wait_until_every_card(page, "e.dataset.category === 'Dress'")
    with page.expect_response(lambda r: "/search/text?" in r.url
                              and "sort=price_asc" in r.url) as answer:
        page.select_option("#sort", "price_asc")
    data = answer.value.json()
    assert data["sort"] == "price_asc" and data["bound"] == 200
    assert data["understood"]["filters"]["category"] == ["Dress"]
    page.wait_for_function(
        "() => { const c = [...document.querySelectorAll('#grid .card')];"
        " const p = c.map(e => Number(e.dataset.basePrice));"
        " return document.querySelector('#grid').getAttribute('aria-busy') === 'false'"
        " && c.length > 1 && c.every(e => e.dataset.category === 'Dress')"
        " && p.every((x, i) => !i || p[i-1] <= x); }")
    assert page.locator("#sort-help").is_visible()
    assert page.locator("#words-understood .word", has_text="category: Dress").count() == 1
