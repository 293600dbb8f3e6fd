"""The mail corpus (``tests/corpus/mail``) and the status each message must end with.

``tests/corpus/MANIFEST.tsv`` says, for every message, the status it must end with as it
came (``expected_status``) and as if the Ba Tri unit had sent it (``expected_status_as_unit``:
its From rewritten by ``as_unit``, Gmail's DMARC pass on top), and why
(``expected_why``). Those were decided by reading each message against the rules (who
the sender is, the auto-reply and bounce headers, the files attached), not copied from
what the code does. Each message is judged on its own (no earlier twin in the store).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = CORPUS / "MANIFEST.tsv"
UNIT = "BT"  # whose address as_unit writes in


@dataclass(frozen=True)
class CorpusMail:
    path: str  # relative to tests/corpus, as in the manifest
    expected: str
    expected_as_unit: str
    why: str

    @property
    def raw(self) -> bytes:
        return (CORPUS / self.path).read_bytes()


def corpus_mail() -> list[CorpusMail]:
    """Every message of the manifest, in its order."""
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [CorpusMail(r["local_path"], r["expected_status"], r["expected_status_as_unit"],
                       r["expected_why"]) for r in rows if r["local_path"].startswith("mail/")]


def as_unit(raw: bytes, sender: str) -> bytes:
    """The same message as if a district unit had sent it: the first ``From:`` line (and
    its continuation) becomes ``sender``, and Gmail's DMARC pass for its domain goes on
    top. A message without such a line keeps its own sender, or none."""
    domain = sender.split("@")[1]
    raw = re.sub(rb"(?im)^from:[^\r\n]*(\r?\n[ \t][^\r\n]*)*", f"From: {sender}".encode(), raw,
                 count=1)
    auth = f"Authentication-Results: mx.google.com; dmarc=pass header.from={domain}\r\n"
    return auth.encode() + raw
