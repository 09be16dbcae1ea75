"""Strict fields and short quotes for the line-based formats (split files, classes.txt,
devkit detection files).

Python's `int()` and `float()` accept more than these formats mean: `int("1_0") == 10` and
`int("١") == 1` (any Unicode digit). A field that is not plain ASCII decimal is an error
here, so a typo cannot silently become another frame id. Error messages quote at most
`QUOTE_LIMIT` characters of the offending line: a 50 MB line is not echoed whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["QUOTE_LIMIT", "numbered_lines", "parse_float", "parse_int", "quote"]

QUOTE_LIMIT = 200

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
# Decimal or exponent notation; nan/inf are syntactically numbers, refused later as not finite.
# Unambiguous (no two repetitions can share a digit), so a rejected 1 MB field is linear time.
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)",
    re.ASCII | re.IGNORECASE,
)


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of the stripped text, cut after `limit` characters."""
    text = text.strip()
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def parse_int(field: str) -> int:
    """An ASCII decimal integer (optional sign); ValueError for anything else."""
    field = field.strip()
    if not _INT.fullmatch(field):
        raise ValueError(f"not an integer: {quote(field)}")
    return int(field)


def parse_float(field: str) -> float:
    """An ASCII decimal number, e.g. `-1.5e3`, `nan`, `inf`; ValueError for anything else."""
    field = field.strip()
    if not _FLOAT.fullmatch(field):
        raise ValueError(f"not a number: {quote(field)}")
    return float(field)


def numbered_lines(
    path: Path, error: type[ValueError] = ValueError
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of a UTF-8 text file; bytes that are not UTF-8 raise
    `error` naming the file and the line (decoding line by line keeps the number exact)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise error(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at "
                    f"column {exc.start + 1})"
                ) from None
            yield lineno, line
