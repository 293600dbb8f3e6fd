"""Text typed in the legacy TCVN3 (ABC) encoding with .VnTime fonts, read as Vietnamese.

Offices still keep forms made in the 1990s: the cells hold Latin-1 code points that only
look Vietnamese through a .VnTime font ("Chi ®oµn" for "Chi đoàn"). We detect such text
by characters that never occur in Unicode Vietnamese and convert it byte by byte.
"""

from __future__ import annotations

import re
import unicodedata

# TCVN 5712:1993 VN3: byte value -> Unicode letter.
_TABLE = {
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
_TRANSLATION = {code: letter for code, letter in _TABLE.items()}

# Latin-1 letters that Unicode Vietnamese uses itself: their presence proves nothing.
_VIETNAMESE_LATIN1 = set("ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúý")
_STRONG = "".join(sorted(chr(code) for code in _TABLE if chr(code) not in _VIETNAMESE_LATIN1))
_STRONG_RE = re.compile("[" + re.escape(_STRONG) + "]")
_UNICODE_VIETNAMESE = re.compile("[\u0102\u0103\u0110\u0111\u01a0\u01a1\u01af\u01b0\u1ea0-\u1ef9]")


def looks_tcvn3(text: str) -> bool:
    """True when the text holds TCVN3-only characters and no Unicode-only Vietnamese."""
    return bool(_STRONG_RE.search(text)) and not _UNICODE_VIETNAMESE.search(text)


def tcvn3_to_unicode(text: str) -> str:
    """Convert TCVN3 text to NFC Unicode; characters outside the table are kept."""
    return unicodedata.normalize("NFC", text.translate(_TRANSLATION))


def unicode_to_tcvn3(text: str) -> str:
    """The reverse (for tests that need a legacy-typed cell); lowercase letters and ĂÂÊÔƠƯĐ."""
    reverse = {letter: chr(code) for code, letter in _TABLE.items()}
    return "".join(reverse.get(ch, ch) for ch in unicodedata.normalize("NFC", text))
