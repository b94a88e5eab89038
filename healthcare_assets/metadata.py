"""Numbers in metadata and reports, rounded for people.

* `rounded(0.123456789012)` -> 0.1235: four significant digits (a float from arithmetic prints 16-17).
* `share(646, 10_420)` -> "6.2 % (646 of 10,420)": a rate with its numerator and denominator;
  `share(0, 0)` -> "undefined (0 of 0)" rather than a made-up 0 % or a division error.
* `share_metadata(...)` the same as text metadata; `number_text(x)` any number as a short string.
"""

import math

import dagster as dg

SIGNIFICANT_DIGITS = 4


def rounded(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` to `digits` significant digits; infinities and NaN unchanged."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def share(count: int, total: int, decimals: int = 1) -> str:
    """`count` of `total` as a percentage with both numbers, or "undefined" when there is no total."""
    if total <= 0:
        return f"undefined ({count:,} of {total:,})"
    return f"{100 * count / total:.{decimals}f} % ({count:,} of {total:,})"


def share_metadata(count: int, total: int) -> dg.TextMetadataValue:
    return dg.MetadataValue.text(share(count, total))


def number_text(value: float | int) -> str:
    """Integers with thousands separators, floats at four significant digits ("inf" and "nan" as such)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{rounded(value):g}"
