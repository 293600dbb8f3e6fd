"""Spreadsheets: reading any supported file, finding its header, typing and checking rows."""
