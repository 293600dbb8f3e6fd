"""intake: files Chi đoàn kiểu mẫu registrations emailed as spreadsheets, answers every sender.

The library is the product; ``intake.cli`` only parses arguments and calls it. Names are
imported on first use (PEP 562): ``intake check`` needs neither the pipeline, IMAP,
openpyxl nor Jinja2, and importing them all cost it a quarter of a second.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings, load_settings
    from .findings import CODES, Finding
    from .pipeline import Pipeline
    from .reference import Reference, load_reference
    from .sheets.report import Report, check_files
    from .workbook import rebuild

_WHERE = {
    "CODES": ".findings", "Finding": ".findings",
    "Pipeline": ".pipeline", "rebuild": ".workbook",
    "Reference": ".reference", "load_reference": ".reference",
    "Report": ".sheets.report", "check_files": ".sheets.report",
    "Settings": ".config", "load_settings": ".config",
}

__all__ = ["CODES", "Finding", "Pipeline", "Reference", "Report", "Settings", "check_files",
           "load_reference", "load_settings", "rebuild"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'intake' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
