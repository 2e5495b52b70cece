"""The Milvus backend's URL, collection names, stored fields and filter expressions — the parts
that need no server. (`tests/integration/test_milvus.py` runs the expressions on a real one.)"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from lookalike import Filters
from lookalike.catalog.brands import normalise_brand
from lookalike.index import Scalars, VectorStoreError
from lookalike.index.milvus import (
    MAX_SIZES,
    MilvusUrl,
    entity_rows,
    filter_expression,
)
from lookalike.index.naming import collection_name, text_code

# what an expression may hold besides field names: digests, numbers, operators, brackets
_SAFE = re.compile(r'^[a-z_ ()\[\],"0-9.e+\-<>=!]*$')


def test_url_parts_and_defaults() -> None:
    url = MilvusUrl.parse("milvus://127.0.0.1:19530")
    assert (url.host, url.port, url.database, url.prefix, url.index, url.ef, url.shards) == (
        "127.0.0.1", 19530, "default", "", "hnsw", 256, 1)
    full = MilvusUrl.parse("milvus://me:s3cret@db.example:1234/shop?prefix=eu_&index=FLAT"
                           "&ef=64&shards=4&timeout=2.5")
    assert (full.user, full.password, full.database, full.prefix, full.index, full.ef,
            full.shards, full.timeout) == ("me", "s3cret", "shop", "eu_", "flat", 64, 4, 2.5)
    assert "s3cret" not in str(full)


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:19530", "milvus://HOST:PORT"),
    ("milvus://127.0.0.1", "milvus://HOST:PORT"),
    ("milvus://127.0.0.1:99999", "port"),
    ("milvus://127.0.0.1:19530/bad-db", "database 'bad-db'"),
    ("milvus://127.0.0.1:19530?prefix=1x", "prefix '1x'"),
    ("milvus://127.0.0.1:19530?index=ivf_pq", "index='ivf_pq'"),
    ("milvus://127.0.0.1:19530?ef=0", "ef=0 is outside"),
    ("milvus://127.0.0.1:19530?ef=lots", "ef='lots' is not a number"),
    ("milvus://127.0.0.1:19530?colour=red", "unknown option 'colour'"),
    ("milvus://127.0.0.1:19530?ef=1&ef=2", "given twice"),
    ("milvus://u:hunter2@127.0.0.1:19530?index=x", "index='x'"),
])
def test_bad_urls_are_one_line_errors(url: str, words: str) -> None:
    with pytest.raises(VectorStoreError) as err:
        MilvusUrl.parse(url)
    message = str(err.value)
    assert words in message and "\n" not in message and "hunter2" not in message


def test_collection_names_are_valid_and_differ_by_folder(tmp_path: Path) -> None:
    a = collection_name(tmp_path / "My Shop (EU)")
    b = collection_name(tmp_path / "other" / "My Shop (EU)")
    assert a != b and a.startswith("lookalike_my_shop_eu_")
    assert collection_name(tmp_path / "x" / ".." / "My Shop (EU)") == a  # same folder
    assert collection_name(tmp_path / "My Shop (EU)", "t1_") == "t1_" + a
    for name in (a, b, collection_name(tmp_path / ("é" * 300)), collection_name(Path("/"))):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", name), name



def test_a_catalog_in_postgresql_is_named_alike_on_every_machine(tmp_path: Path) -> None:
    url = "postgresql://shop:secret@DB.example:5433/lookalike"
    a = collection_name(tmp_path / "m1" / "Shop", database_url=url)
    assert a == collection_name(tmp_path / "m2" / "Shop", database_url=url)  # another machine
    assert a == collection_name(tmp_path / "Shop", database_url=url.replace("shop:secret@", ""))
    assert a.startswith("lookalike_shop_") and a != collection_name(tmp_path / "Shop")
    assert a != collection_name(tmp_path / "Shop", database_url=url + "?schema=other")
    assert a != collection_name(tmp_path / "Shop", database_url=url.replace("5433", "5432"))
    assert a != collection_name(tmp_path / "Shop", database_url=url.replace("/lookalike", "/x"))
    assert a != collection_name(tmp_path / "Shop2", database_url=url)

def test_strings_are_stored_as_digests_and_unknown_as_nothing_a_filter_can_name() -> None:
    assert text_code(None) == ""
    assert text_code("") != "" and len(text_code("")) == 32
    assert text_code("dress") != text_code("Dress")
    assert re.fullmatch(r"[0-9a-f]{32}", text_code('x" or id > 0 or "\ud800'))
    ids = np.asarray([7, 8], dtype=np.int64)
    rows = entity_rows(ids, np.zeros((2, 4), np.float32), [
        Scalars(category="dress", sizes=("m", "m", "l"), price=3.5, kids=True),
        Scalars(),
    ])
    assert rows[0] == [7, 8]
    assert rows[2] == [text_code("dress"), ""] and rows[3] == ["", ""]
    assert rows[5] == [sorted({text_code("m"), text_code("l")}), []]
    assert rows[6][0] == 3.5 and math.isnan(rows[6][1])
    assert rows[8] == [1, -1] and rows[9] == [-1, -1]


def test_an_item_with_too_many_sizes_is_named() -> None:
    many = Scalars(sizes=tuple(f"s{i}" for i in range(MAX_SIZES + 1)))
    with pytest.raises(ValueError, match="item 5: 129 sizes"):
        entity_rows(np.asarray([5]), np.zeros((1, 4), np.float32), [many])


def test_no_value_reaches_an_expression_unhashed() -> None:
    evil = 'x" or id > 0 or "'
    f = Filters(category=[evil], brand=["a'b", "]) or (["], colour=["\\"], size=[evil],
                price_min=1.5, price_max=1e16, kids=True, second_hand=False,
                min_sustainability=2.5)
    expr = filter_expression(f, np.asarray([3, 1, 3]), np.asarray([2]))
    assert expr is not None and _SAFE.match(expr), expr
    assert evil not in expr and "a'b" not in expr
    assert f'(category in ["{text_code(evil)}"])' in expr
    assert text_code(normalise_brand("a'b")) in expr and text_code("\\") in expr  # as stored
    assert "(id in [1, 3])" in expr and "(id not in [2])" in expr
    assert "(price >= 1.5)" in expr and "(price <= 1e+16)" in expr and "(kids == 1)" in expr


def test_filters_that_keep_everything_or_nothing() -> None:
    assert filter_expression(None) == ""
    assert filter_expression(Filters(include_sold=True)) == ""
    sold = f'(state != "{text_code("sold")}")'
    assert filter_expression(Filters()) == sold  # by default sold items are left out
    assert filter_expression(Filters(state=["sold", "reserved"])) == (
        f'(state in {sorted([text_code("reserved"), text_code("sold")])})'.replace("'", '"'))
    assert filter_expression(Filters(price_min=math.inf)) is None
    assert filter_expression(None, allowed=np.asarray([], dtype=np.int64)) is None
    any_known_price = f"(price >= {-1.7976931348623157e308!r})"  # NaN (unknown) is not
    assert filter_expression(Filters(price_max=math.inf, include_sold=True)) == any_known_price
    assert filter_expression(None, exclude=np.asarray([], dtype=np.int64)) == ""
