"""What a quarantined value may show: codes and dates yes, free text no.

A value that fails a check is kept in `rejects` (and shown on the Data page) so a person can fix
the export. But a column that should hold a status word or a date sometimes holds whatever a
person typed ("Pt ZZTESTNAME called from 5558675309"), and a record carries ids such as an MRN.
So a value is shown only when it looks like a code, a word or two, a date or an amount; text
with a run of five or more digits (a phone number, an MRN, a ZIP code), three or more words, or
an `@` (an email address) is replaced by `***`. The rule is the same in Python (`masked`,
`shown`) and in SQL (`masked_sql`, `shown_sql`), for values that are quarantined in either.
"""

from __future__ import annotations

import re

from ingest.pseudonymize import MASK

_DIGITS = r"[0-9]{5,}"
_WORDS = r"[A-Za-z]+[^A-Za-z]+[A-Za-z]+[^A-Za-z]+[A-Za-z]+"
_FREE_TEXT = re.compile(f"{_DIGITS}|{_WORDS}|@")
WITHHELD = "(free text, withheld: see the file at this position)"


def is_free_text(value: object) -> bool:
    """Whether `value` may name or reach a person (see the module docstring)."""
    return isinstance(value, str) and _FREE_TEXT.search(value) is not None


def masked(value: str | None) -> str | None:
    """`value`, or `***` when it is free text."""
    return MASK if is_free_text(value) else value


def shown(value: object) -> str:
    """`value` quoted for a sentence, or a note that it is withheld."""
    return WITHHELD if is_free_text(value) else repr(value)


def masked_sql(expr: str) -> str:
    """SQL: the text `expr`, or `***` when it is free text."""
    return f"CASE WHEN regexp_matches({expr}, '{_FREE_TEXT.pattern}') THEN '{MASK}' ELSE {expr} END"


def shown_sql(expr: str) -> str:
    """SQL: the text `expr` in single quotes for a sentence, or the note that it is withheld."""
    return f"CASE WHEN regexp_matches({expr}, '{_FREE_TEXT.pattern}') THEN '{WITHHELD}' ELSE '''' || {expr} || '''' END"
