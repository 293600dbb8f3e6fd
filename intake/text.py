"""Vietnamese text: NFC, folding for comparison, administrative prefixes.

Names arrive in every spelling a district office produces (NFD from a Mac, no
diacritics, "P.8" for "Phường 08"); comparison is done on a *key* so that all those
spellings meet, while everything shown to people keeps the sender's own text in NFC.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import PurePath

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[\.,;:/\\\-–—_()\[\]\"'`’“”!?*#]+")
_LEADING_ZEROS = re.compile(r"\b0+(\d)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

# Longest first, so "thi tran" wins over "tt" and "khu pho" over "kp".
_PREFIXES = sorted(
    [
        "xa", "x", "phuong", "p", "thi tran", "tt", "ap", "khu pho", "kp", "khom",
        "chi bo", "cb", "chi doan", "cd", "to dan pho",
    ],
    key=len,
    reverse=True,
)
_PREFIX_RE = re.compile(r"^(?:(?:{})\s+)+".format("|".join(re.escape(p) for p in _PREFIXES)))


def nfc(text: str) -> str:
    """Unicode NFC, the form every stored and displayed string uses."""
    return unicodedata.normalize("NFC", text)


def clean(value: object) -> str:
    """A cell or header value as display text: NFC, control characters gone, trimmed."""
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    if type(value) is str:
        return _clean_text(value)
    return _clean(value)


@lru_cache(maxsize=131072)
def _clean_text(value: str) -> str:
    """``clean`` of a string, remembered: a sheet repeats its communes, levels, marks."""
    if value.isprintable() and "  " not in value and unicodedata.is_normalized("NFC", value) \
            and value == value.strip():
        return value  # already clean: the common case, checked in C
    return _clean(value)


def _clean(value: object) -> str:
    text = nfc(str(value))
    text = _CONTROL.sub("", text)
    return _SPACES.sub(" ", text).strip()


# In a file name: path separators, what Windows forbids, control characters (C0, DEL
# and C1) and lone surrogates (a UTF-7 or raw-unicode-escape name can spell one; no file
# system, SQLite or UTF-8 takes it) become "_"; invisible format characters (zero-width,
# BOM, the direction overrides that make a name read backwards) are dropped: the sender
# never saw them.
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f\ud800-\udfff<>:"/\\|?*]+')
_INVISIBLE_IN_NAME = re.compile(r"[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Names Windows keeps for devices, whatever follows the first dot ("nul.xlsx" too).
_RESERVED_NAMES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                             *(f"lpt{i}" for i in range(1, 10))})


def safe_filename(name: str, fallback: str = "tep-dinh-kem", max_bytes: int = 120) -> str:
    """A file name from mail (sender text) as a name that is safe on any disk and readable.

    The last path segment only (no "../", no folders, "\\" counts as a separator), no
    control or invisible characters, no leading or trailing dots and spaces (a hidden
    file, a name Windows trims), no device names of Windows, in NFC. Capped in UTF-8
    *bytes*, not characters: file systems count bytes and a Vietnamese letter takes two
    or three, so 79 × "ệ" is already 237 of Linux's 255. The extension is kept and a
    letter is never cut in half. Nothing left gives ``fallback``.
    """
    text = _INVISIBLE_IN_NAME.sub("", nfc(name or ""))
    text = text.replace("\\", "/").split("/")[-1]
    text = _UNSAFE_IN_NAME.sub("_", text).strip(" ._")
    if len(text.encode()) > max_bytes:
        suffix = PurePath(text).suffix
        suffix = suffix if len(suffix.encode()) <= min(10, max_bytes // 2) else ""
        room = max_bytes - len(suffix.encode())
        stem = text[: len(text) - len(suffix)] if suffix else text
        stem = stem.encode()[:room].decode("utf-8", errors="ignore").rstrip(" ._")
        text = (stem + suffix).strip(" ._")
    first, dot, rest = text.partition(".")
    if first.lower() in _RESERVED_NAMES:
        text = f"{first}_{dot}{rest}"
    return text or fallback


def strip_diacritics(text: str) -> str:
    """Remove tone and vowel marks; đ/Đ become d/D (NFD does not decompose them)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


@lru_cache(maxsize=65536)
def fold(value: object) -> str:
    """Comparison form: no diacritics, case folded, punctuation as spaces, spaces collapsed.

    Cached: a 20,000-row sheet repeats the same few hundred names.
    """
    text = strip_diacritics(clean(value)).casefold()
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _split_glued_prefix(text: str) -> str:
    # "p8", "kp3", "x.an thanh" (after punctuation became a space) -> spaced form.
    return re.sub(r"^(p|kp|x|tt|ap)(\d)", r"\1 \2", text)


@lru_cache(maxsize=65536)
def name_key(value: object) -> str:
    """Key for matching place, party-cell and branch names (SPEC §3 normalisation).

    "Phường 08", "P.8" and "phường 8" all give "8"; "Chi bộ ấp Thới Long" and
    "Ấp Thới Long" both give "thoi long".
    """
    text = _split_glued_prefix(fold(value))
    text = _PREFIX_RE.sub("", text)
    text = _LEADING_ZEROS.sub(r"\1", text)
    return text.strip()


_ALPHABET = {letter: rank for rank, letter in enumerate("aăâbcdđeêghiklmnoôơpqrstuưvxy")}
# Dictionary order of the tones: ngang, huyền, hỏi, ngã, sắc, nặng.
_TONES = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}
_WORD = re.compile(r"\d+|[^\W\d_]+|[^\w\s]|_", re.UNICODE)


def _letter(char: str) -> tuple[tuple[int, int], int]:
    """(primary weight, tone) of one letter: "ố" is ô (a letter of its own) with sắc."""
    decomposed = unicodedata.normalize("NFD", char)
    tone = 0
    shape = decomposed[0]
    for mark in decomposed[1:]:
        if mark in _TONES:
            tone = _TONES[mark]
        else:
            shape += mark
    letter = unicodedata.normalize("NFC", shape)
    rank = _ALPHABET.get(letter)
    return ((1, rank) if rank is not None else (2, ord(letter[0]))), tone


@lru_cache(maxsize=65536)
def vietnamese_sort_key(value: str) -> tuple:
    """Sort key in Vietnamese dictionary order, as a collator's levels are compared.

    1. the base letters, word by word (ă, â, đ, ê, ô, ơ, ư are letters of their own; a
       word sorts before a longer word it begins, so "An Bình" < "Anh"; numbers by value,
       so "Phường 2" < "Phường 10");
    2. then the tones, in dictionary order (ngang, huyền, hỏi, ngã, sắc, nặng), so
       "Hoa" < "Hòa" < "Hỏa" < "Hóa" < "Họa", but "Hòa Lộc" < "Hoa Thành";
    3. then case, so the order is total and stable.
    """
    text = nfc(value)
    primary: list[tuple] = []
    tones: list[int] = []
    for word in _WORD.findall(text.casefold()):
        if word.isdigit():
            primary.append(((0, int(word)),))
            continue
        weights = []
        for char in word:
            weight, tone = _letter(char)
            weights.append(weight)
            tones.append(tone)
        primary.append(tuple(weights))
    return tuple(primary), tuple(tones), tuple(not c.islower() for c in text), text
