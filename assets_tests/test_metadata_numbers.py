"""Numbers for people: floats at four significant digits, rates with their numerator and denominator."""

import math

import pytest

from healthcare_assets.metadata import number_text, rounded, share


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.12345678901234567, 0.1235), (1234.5678, 1235.0), (0.000123456, 0.0001235), (-2.718281828, -2.718), (0.0, 0.0)],
)
def test_floats_keep_four_significant_digits(value, expected):
    assert rounded(value) == expected
    assert len(repr(rounded(value)).lstrip("-").replace(".", "").lstrip("0")) <= 5


def test_non_finite_values_stay_what_they_are():
    assert rounded(math.inf) == math.inf and math.isnan(rounded(math.nan))
    assert number_text(math.inf) == "inf"


def test_rates_carry_their_denominator_and_an_empty_one_is_undefined():
    assert share(646, 10_420) == "6.2 % (646 of 10,420)"
    assert share(0, 0) == "undefined (0 of 0)"
    assert share(3, 3) == "100.0 % (3 of 3)"


def test_numbers_print_short():
    assert number_text(10_420) == "10,420"
    assert number_text(0.12345678901234567) == "0.1235"
    assert number_text(True) == "True"
