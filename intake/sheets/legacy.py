"""Text typed in the legacy 8-bit Vietnamese encodings, read as the Vietnamese it means.

Offices still keep forms made in the 1990s and 2000s. Their cells hold Windows code
points that only look Vietnamese through the font they were typed in:

* **TCVN3** (ABC, .VnTime/.VnArial fonts): one byte per letter, "Chi ®oµn" for
  "Chi đoàn"; the .VnTimeH family shows the same bytes as capitals.
* **VNI-Windows** (VNI-Times and other VNI-* fonts, common in the south): a base letter
  followed by a mark byte, "Chi ñoaøn" for "Chi đoàn".

Which one a cell holds is decided, strongest sign first (SPEC §3): the cell's font where
the file keeps it (``fonts.py``); characters Unicode Vietnamese never uses; the other
cells of its column and sheet; and whether the decoded text is made of real Vietnamese
syllables while the text as stored is not ("chi bé Êp phó héi" is TCVN3 for "chi bộ ấp
phú hội": "Êp" and "héi" are no Vietnamese syllables). No library on PyPI covers both
encodings and is kept up, so the two tables live here, tested both ways.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

TCVN3, TCVN3_CAPITALS, VNI = "tcvn3", "tcvn3-capitals", "vni"

# TCVN 5712:1993 VN3: code point -> Unicode letter.
_TCVN3 = {
    0xB5: "à", 0xB6: "ả", 0xB7: "ã", 0xB8: "á", 0xB9: "ạ",
    0xA8: "ă", 0xBB: "ằ", 0xBC: "ẳ", 0xBD: "ẵ", 0xBE: "ắ", 0xC6: "ặ",
    0xA9: "â", 0xC7: "ầ", 0xC8: "ẩ", 0xC9: "ẫ", 0xCA: "ấ", 0xCB: "ậ",
    0xAE: "đ",
    0xCC: "è", 0xCE: "ẻ", 0xCF: "ẽ", 0xD0: "é", 0xD1: "ẹ",
    0xAA: "ê", 0xD2: "ề", 0xD3: "ể", 0xD4: "ễ", 0xD5: "ế", 0xD6: "ệ",
    0xD7: "ì", 0xD8: "ỉ", 0xDC: "ĩ", 0xDD: "í", 0xDE: "ị",
    0xDF: "ò", 0xE1: "ỏ", 0xE2: "õ", 0xE3: "ó", 0xE4: "ọ",
    0xAB: "ô", 0xE5: "ồ", 0xE6: "ổ", 0xE7: "ỗ", 0xE8: "ố", 0xE9: "ộ",
    0xAC: "ơ", 0xEA: "ờ", 0xEB: "ở", 0xEC: "ỡ", 0xED: "ớ", 0xEE: "ợ",
    0xEF: "ù", 0xF1: "ủ", 0xF2: "ũ", 0xF3: "ú", 0xF4: "ụ",
    0xAD: "ư", 0xF5: "ừ", 0xF6: "ử", 0xF7: "ữ", 0xF8: "ứ", 0xF9: "ự",
    0xFA: "ỳ", 0xFB: "ỷ", 0xFC: "ỹ", 0xFD: "ý", 0xFE: "ỵ",
    0xA1: "Ă", 0xA2: "Â", 0xA3: "Ê", 0xA4: "Ô", 0xA5: "Ơ", 0xA6: "Ư", 0xA7: "Đ",
}
_TCVN3_TRANSLATION = dict(_TCVN3)

# VNI-Windows: letters of one byte, then a base vowel followed by a mark byte.
_VNI_SINGLE = {"ñ": "đ", "Ñ": "Đ", "ô": "ơ", "Ô": "Ơ", "ö": "ư", "Ö": "Ư", "æ": "ỉ", "Æ": "Ỉ",
               "ó": "ĩ", "Ó": "Ĩ", "ò": "ị", "Ò": "Ị", "î": "ỵ", "Î": "Ỵ"}
_TONE_MARKS = {"ù": "\u0301", "ø": "\u0300", "û": "\u0309", "õ": "\u0303", "ï": "\u0323"}
_CIRCUMFLEX_MARKS = {"â": "", "á": "\u0301", "à": "\u0300", "å": "\u0309", "ã": "\u0303",
                     "ä": "\u0323"}
_BREVE_MARKS = {"ê": "", "é": "\u0301", "è": "\u0300", "ú": "\u0309", "ü": "\u0303",
                "ë": "\u0323"}


def _vni_pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}

    def add(base: str, mark: str, letter: str) -> None:
        for b in (base, base.upper()):
            for m in (mark, mark.upper()):
                out = letter if b.islower() else letter.upper()
                pairs[b + m] = unicodedata.normalize("NFC", out)

    for base in "aeouy":
        for mark, tone in _TONE_MARKS.items():
            add(base, mark, base + tone)
    for base, shaped in (("ô", "ơ"), ("ö", "ư")):
        for mark, tone in _TONE_MARKS.items():
            add(base, mark, shaped + tone)
    for base in "aeo":
        for mark, tone in _CIRCUMFLEX_MARKS.items():
            add(base, mark, base + "\u0302" + tone)
    for mark, tone in _BREVE_MARKS.items():
        add("a", mark, "a\u0306" + tone)
    return pairs


_VNI_PAIRS = _vni_pairs()
_VNI_RE = re.compile("|".join(sorted((re.escape(k) for k in _VNI_PAIRS), key=len, reverse=True))
                     + "|[" + "".join(_VNI_SINGLE) + "]")

# Latin-1 letters that Unicode Vietnamese uses itself: their presence proves nothing.
_VIETNAMESE_LATIN1 = set("ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúý")
_LEGACY_ONLY = {c for c in {chr(c) for c in _TCVN3} | set("".join(_VNI_PAIRS)) | set(_VNI_SINGLE)
                if ord(c) > 0x7F}
_STRONG_RE = re.compile("[" + re.escape("".join(sorted(_LEGACY_ONLY - _VIETNAMESE_LATIN1)))
                        + "]")
_HIGH_RE = re.compile("[\u00a1-\u00ff]")
_UNICODE_VIETNAMESE = re.compile("[\u0102\u0103\u0110\u0111\u01a0\u01a1\u01af\u01b0\u1ea0-\u1ef9]")


def font_encoding(font: str) -> str | None:
    """The legacy encoding a font name stands for: .VnTime -> TCVN3, VNI-Times -> VNI."""
    name = font.strip().strip("'\"").casefold()
    if name.startswith(".vn"):
        return TCVN3_CAPITALS if name.endswith("h") else TCVN3
    if name.startswith("vni"):
        return VNI
    return None


def tcvn3_to_unicode(text: str) -> str:
    """Convert TCVN3 text to NFC Unicode; characters outside the table are kept."""
    return unicodedata.normalize("NFC", text.translate(_TCVN3_TRANSLATION))


def vni_to_unicode(text: str) -> str:
    """Convert VNI-Windows text to NFC Unicode; characters outside the table are kept."""
    return unicodedata.normalize("NFC", _VNI_RE.sub(
        lambda m: _VNI_PAIRS.get(m.group(0)) or _VNI_SINGLE[m.group(0)], text))


def decode(text: str, encoding: str) -> str:
    if encoding == VNI:
        return vni_to_unicode(text)
    decoded = tcvn3_to_unicode(text)
    return decoded.upper() if encoding == TCVN3_CAPITALS else decoded


def unicode_to_tcvn3(text: str) -> str:
    """The reverse (for tests that need a legacy-typed cell). .VnTime has no capital
    letters with tones: an office types the small one ("Êp" is "ấp"), and so does this."""
    reverse = {letter: chr(code) for code, letter in _TCVN3.items()}
    return "".join(reverse.get(ch) or reverse.get(ch.lower(), ch)
                   for ch in unicodedata.normalize("NFC", text))


def unicode_to_vni(text: str) -> str:
    """The reverse of ``vni_to_unicode`` (for tests and the benchmark)."""
    reverse = {letter: code for code, letter in _VNI_PAIRS.items()
               if code[0].islower() == code[1].islower()}
    reverse.update({letter: code for code, letter in _VNI_SINGLE.items()})
    return "".join(reverse.get(ch, ch) for ch in unicodedata.normalize("NFC", text))


# --- Vietnamese syllables -------------------------------------------------------------
_ONSETS = ("ngh", "ng", "gh", "gi", "kh", "nh", "ph", "th", "tr", "ch", "qu", "b", "c", "d",
           "đ", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "")
_RHYMES = set("""
a ai ao au ay am an ang anh ap at ac ach ăm ăn ăng ăp ăt ăc âu ây âm ân âng âp ât âc
e eo em en eng ep et ec ê êu êm ên ênh êp êt êch i ia iu im in inh ip it ich
iêu iêm iên iêng iêp iêt iêc yêu yêm yên yêt o oi om on ong op ot oc oong ooc
ô ôi ôm ôn ông ôp ôt ôc ơ ơi ơm ơn ơp ơt u ua ui um un ung up ut uc
uôi uôm uôn uông uôt uôc ư ưa ưi ưu ưm ưn ưng ưt ưc ươi ươu ươm ươn ương ươp ươt ươc y
oa oai oay oan oang oanh oat oac oach oăm oăn oăng oăt oăc oe oeo oen oet oam oap
uy uya uyu uych uynh uyt uyn uyên uyêt uê uênh uêch uân uâng uât uây uơ
""".split())
_STOPS = ("p", "t", "c", "ch")
_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
_WORDS = re.compile(r"[^\W\d_]+")


_LABIALS = ("b", "m", "p", "ph", "v")  # a rounded glide never follows them ("phoá" is no word)
_MEDIAL = ("oa", "oă", "oe", "uy", "uê", "uâ", "uơ")
_VOWELS = set("aăâeêioôơuưy")
_SHAPED = set("ăâêôơư")


def _tone_places(rhyme: str) -> set[int]:
    """Where a rhyme's tone mark may stand (old and new placement both accepted):
    on the shaped vowel (ê in "iêng", ơ in "ương"), else the last vowel before a final
    consonant, else the middle of three vowels, else the first of two ("ai", "ao"),
    either one in "oa", "oe", "uy" ("hoà"/"hòa")."""
    vowels = [i for i, c in enumerate(rhyme) if c in _VOWELS]
    if len(vowels) <= 1:
        return set(vowels)
    shaped = [i for i in vowels if rhyme[i] in _SHAPED]
    if shaped:
        return {shaped[-1]}
    if vowels[-1] != len(rhyme) - 1:
        return {vowels[-1]}
    if len(vowels) == 3:
        return {vowels[1]}
    if rhyme[vowels[0]] + rhyme[vowels[1]] in ("oa", "oe", "uy"):
        return {vowels[0], vowels[1]}
    return {vowels[0]}


@lru_cache(maxsize=65536)
def is_syllable(word: str) -> bool:
    """Whether a word is a Vietnamese syllable: onset and rhyme, at most one tone on the
    vowel that carries it, and only sắc or nặng on a rhyme ending in p, t, c or ch
    ("xão" is one, "xaõ", "êp" and "phoá" are not)."""
    letters = unicodedata.normalize("NFC", word.casefold())
    base, tone, place = [], "", -1
    for index, char in enumerate(letters):
        parts = unicodedata.normalize("NFD", char)
        marks = [c for c in parts if c in _TONES]
        if marks:
            if tone or len(marks) > 1:
                return False
            tone, place = marks[0], index
        base.append(unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONES)))
    text = "".join(base)
    for onset in _ONSETS:
        if not text.startswith(onset):
            continue
        rhyme = text[len(onset):]
        if rhyme not in _RHYMES or (onset in _LABIALS and rhyme[:2] in _MEDIAL):
            continue
        if rhyme.endswith(_STOPS) and tone not in ("\u0301", "\u0323"):
            continue
        if tone and place - len(onset) not in _tone_places(rhyme):
            continue
        return True
    return False


def syllable_share(text: str) -> float:
    """The share of a text's words that are Vietnamese syllables (1.0 for no words)."""
    words = _WORDS.findall(text)
    if not words:
        return 1.0
    return sum(1 for w in words if is_syllable(w)) / len(words)


@lru_cache(maxsize=65536)
def reading(text: str, hint: str | None = None) -> tuple[str, str | None, bool]:
    """(text as read, encoding used or None, certain?) for one cell's text.

    Certain: a legacy font on the cell, or characters only the legacy encodings produce
    (the better of the two decodings by syllables, TCVN3 on a tie); Unicode-only
    Vietnamese letters prove Unicode. Uncertain (only letters both may hold, "chi bé Êp
    phó héi"): decoded here only when the decoding is mostly real syllables and the text
    as stored is less so; the caller may decide again with its column's encoding.
    """
    if not _HIGH_RE.search(text) or _UNICODE_VIETNAMESE.search(text):
        return text, None, True
    if hint:
        return decode(text, hint), hint, True
    tcvn3, vni = tcvn3_to_unicode(text), vni_to_unicode(text)
    share_t, share_v = syllable_share(tcvn3), syllable_share(vni)
    if _STRONG_RE.search(text):
        return (vni, VNI, True) if share_v > share_t else (tcvn3, TCVN3, True)
    share_raw = syllable_share(text)
    best, encoding, share = (vni, VNI, share_v) if share_v > share_t else (tcvn3, TCVN3, share_t)
    if share > share_raw and share >= 0.75:
        return best, encoding, False
    return text, None, False


def reread(text: str, encoding: str) -> str:
    """An uncertain cell in a column (or sheet) whose other cells are surely ``encoding``:
    decoded unless that makes fewer of its words Vietnamese syllables ("Chi bé khu phè 4"
    reads as Vietnamese both ways; beside TCVN3 cells it is "Chi bộ khu phố 4")."""
    decoded = decode(text, encoding)
    return decoded if syllable_share(decoded) >= syllable_share(text) else text
