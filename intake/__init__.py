"""intake: files Chi đoàn kiểu mẫu registrations emailed as spreadsheets, answers every sender.

The library is the product; ``intake.cli`` only parses arguments and calls it.
"""

from .config import Settings, load_settings
from .findings import CODES, Finding
from .pipeline import Pipeline, rebuild
from .reference import Reference, load_reference
from .sheets.report import Report, check_files

__all__ = ["CODES", "Finding", "Pipeline", "Reference", "Report", "Settings", "check_files",
           "load_reference", "load_settings", "rebuild"]
__version__ = "0.1.0"
