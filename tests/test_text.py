"""Vietnamese text normalisation (SPEC §3)."""

from __future__ import annotations

import unicodedata

import pytest

from intake.sheets.legacy import tcvn3_to_unicode, unicode_to_tcvn3
from intake.text import clean, fold, name_key, vietnamese_sort_key


@pytest.mark.parametrize("spelling", ["Phường 08", "P.8", "phường 8", "P8", "PHƯỜNG 8"])
def test_ward_spellings_meet(spelling):
    assert name_key(spelling) == "8"


@pytest.mark.parametrize("spelling", ["Chi bộ ấp Thới Long", "Ấp Thới Long", "ap thoi long",
                                      "CB ấp Thới  Long", "Thới Long"])
def test_party_cell_spellings_meet(spelling):
    assert name_key(spelling) == "thoi long"


def test_prefixes_and_diacritics():
    assert name_key("Thị trấn Châu Thành") == name_key("TT. Chau Thanh") == "chau thanh"
    assert name_key("Xã Đa Phước Hội") == "da phuoc hoi"
    assert name_key("Khu phố 3") == name_key("KP.03") == "3"


def test_nfd_input_is_nfc_after_clean():
    nfd = unicodedata.normalize("NFD", "Huyện đoàn Châu Thành")
    assert clean(nfd) == "Huyện đoàn Châu Thành"
    assert fold(nfd) == "huyen doan chau thanh"


def test_clean_drops_control_and_direction_characters():
    assert clean("Ấp\u202e 1\x00\n") == "Ấp 1"


def test_tcvn3_round_trip():
    text = "Chi đoàn ấp Phú Hưng"
    legacy = unicode_to_tcvn3(text)
    assert legacy != text
    assert tcvn3_to_unicode(legacy) == text


def test_vietnamese_sort_order():
    names = ["Đại Điền", "Dị", "An Hóa", "Ấp", "Bình", "Ă"]
    assert sorted(names, key=vietnamese_sort_key) == ["An Hóa", "Ă", "Ấp", "Bình", "Dị",
                                                      "Đại Điền"]


@pytest.mark.parametrize("first,second", [
    ("Hòa Lộc", "Hoa Thành"),      # base letters first (l < t), tones only after
    ("An Bình", "Anh"),            # a word before a longer word it begins
    ("Hoa", "Hòa"), ("Hòa", "Hỏa"), ("Hỏa", "Hõa"), ("Hõa", "Hóa"), ("Hóa", "Họa"),
    ("Dương", "Đa"),               # đ is a letter after d
    ("An", "Ăn"), ("Ăn", "Ân"),    # a < ă < â
    ("Ông", "Ơn"),                 # o < ô < ơ
    ("Ung", "Ưng"),                # u < ư
    ("Phường 2", "Phường 10"),     # numbers by value
    ("Xã Mỹ Thạnh", "Xã Mỹ Thạnh An"),
])
def test_vietnamese_order_pairs(first, second):
    assert vietnamese_sort_key(first) < vietnamese_sort_key(second)
    assert sorted([second, first], key=vietnamese_sort_key) == [first, second]


def test_vietnamese_order_of_a_hand_sorted_sample():
    """Sorted by hand, letter by letter, as a Vietnamese dictionary orders them (u < ư, so
    "Phú …" comes before "Phường …")."""
    expected = [
        "An Hiệp", "An Hóa", "An Khánh", "An Thạnh", "Anh Đức", "Ấp Bắc",
        "Ba Tri", "Bảo Thạnh", "Bình Đại", "Châu Bình", "Châu Thành", "Chợ Lách",
        "Giồng Trôm", "Hòa Lộc", "Hoa Thành", "Hưng Khánh Trung A", "Mỏ Cày Bắc",
        "Mỏ Cày Nam", "Phú Hưng", "Phú Nhuận", "Phường 1", "Phường 4", "Phường 10",
        "Tân Thạch", "Thạnh Phú", "Thành Thới A", "Thới Thuận", "Vĩnh Hòa",
    ]
    shuffled = sorted(expected, key=lambda name: name[::-1])
    assert sorted(shuffled, key=vietnamese_sort_key) == expected
