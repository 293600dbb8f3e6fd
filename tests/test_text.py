"""Vietnamese text normalisation (SPEC §3)."""

from __future__ import annotations

import unicodedata

import pytest

from intake.sheets.legacy import tcvn3_to_unicode, unicode_to_tcvn3
from intake.text import clean, fold, name_key, safe_filename, vietnamese_sort_key


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


# --- safe_filename: a file name from mail is sender text ---------------------------------

@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("C:\\Users\\hd\\DS.xlsx", "DS.xlsx"),
    ("/tmp/../../DS.xlsx", "DS.xlsx"),
    ("..", "tep-dinh-kem"),
    (".bashrc", "bashrc"),  # no hidden files
    ("DS.xlsx. . ", "DS.xlsx"),  # Windows would trim them anyway
])
def test_safe_filename_never_leaves_the_folder(name, safe):
    assert safe_filename(name) == safe


def test_safe_filename_replaces_control_characters_and_drops_invisible_ones():
    assert safe_filename("a\nb\r\x00.xlsx") == "a_b_.xlsx"
    assert safe_filename("DS\x85\x9b.xlsx") == "DS_.xlsx"  # C1 controls
    assert safe_filename('DS<1>:"2"|?*.xlsx') == "DS_1_2_.xlsx"
    # Direction overrides would show "DS\u202eslx.exe" as "DSexe.xlsx"; zero-width and BOM.
    assert safe_filename("DS\u202eslx.exe") == "DSslx.exe"
    assert safe_filename("\ufeffDanh\u200b sách.xlsx") == "Danh sách.xlsx"


def test_safe_filename_is_nfc():
    mac = unicodedata.normalize("NFD", "Danh sách Châu Thành.xlsx")
    assert safe_filename(mac) == "Danh sách Châu Thành.xlsx"
    assert unicodedata.is_normalized("NFC", safe_filename(mac))


def test_safe_filename_empty_gives_the_fallback():
    assert safe_filename("") == "tep-dinh-kem"
    assert safe_filename(" ._ ") == "tep-dinh-kem"
    assert safe_filename("\u200b", fallback="ds.xlsx") == "ds.xlsx"


def test_safe_filename_is_capped_in_bytes_keeping_the_extension():
    long = safe_filename("x" * 400 + ".xlsx")
    assert len(long) == 120 and long.endswith(".xlsx")
    # File systems count bytes: an NFC Vietnamese letter is two or three of them.
    vietnamese = safe_filename("ệ" * 79 + ".xlsx")
    assert vietnamese == "ệ" * 38 + ".xlsx"  # 38 × 3 bytes + 5 = 119 ≤ 120 < 39 × 3 + 5
    name = "Danh sách Chi đoàn kiểu mẫu ấp Thới Long xã Phước Thạnh huyện Châu Thành " * 4
    cut = safe_filename(name + ".xlsx", max_bytes=100)
    assert len(cut.encode()) <= 100 and cut.endswith(".xlsx")
    assert name.startswith(cut.removesuffix(".xlsx"))  # cut between letters, none halved
    assert "\ufffd" not in cut and unicodedata.is_normalized("NFC", cut)


def test_safe_filename_stays_short_for_a_decomposed_long_name():
    """An NFD name takes more bytes than it will: the cap applies to the NFC form."""
    nfd = unicodedata.normalize("NFD", "ệ" * 39) + ".xlsx"
    assert safe_filename(nfd) == "ệ" * 38 + ".xlsx"


@pytest.mark.parametrize(("name", "safe"), [
    ("CON.xlsx", "CON_.xlsx"), ("nul", "nul_"), ("com1.tar.gz", "com1_.tar.gz"),
    ("Lpt9.csv", "Lpt9_.csv"), ("console.xlsx", "console.xlsx"), ("com10.xlsx", "com10.xlsx"),
])
def test_safe_filename_avoids_windows_device_names(name, safe):
    assert safe_filename(name) == safe


def test_safe_filename_takes_lone_surrogates():
    """A name decoded from UTF-7 ("+2AA-") or raw-unicode-escape may hold a lone surrogate,
    which no file system, SQLite or UTF-8 accepts: it becomes "_", like a control."""
    assert safe_filename("\ud800x.xlsx") == "x.xlsx"
    assert safe_filename("a\udcffb.xlsx") == "a_b.xlsx"
    assert safe_filename("x" * 200 + "\ud800.xlsx") == "x" * 115 + ".xlsx"  # capped
