"""NHS number normalisation, the modulus 11 check digit and the masked form for logs."""

from __future__ import annotations

import pytest

from pkb_letters.intake.nhs_number import InvalidNhsNumber, check_digit, mask, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9999999999", "9999999999"),
        ("5760678914", "5760678914"),
        ("9434765919", "9434765919"),
        ("576 067 8914", "5760678914"),
        ("576-067-8914", "5760678914"),
        ("  576 - 067 - 8914\t", "5760678914"),
        ("9170772010", "9170772010"),  # remainder 0: check digit 11 is written 0
    ],
)
def test_valid_numbers_are_normalised_to_ten_digits(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("5760678915", ["check digit"]),  # last digit off by one
        ("5760678941", ["check digit"]),  # two digits swapped
        ("9614255480", ["check digit"]),  # no valid number starts 961425548 (check would be 10)
        ("576067891", ["9 digits", "leading zero", "text"]),
        ("57606789140", ["10 digits", "11"]),
        ("57606789", ["10 digits", "8"]),
        ("57606789I4", ["only the digits 0-9"]),
        ("NHS5760678914", ["only the digits 0-9"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("5.76068E+09", ["spreadsheet", "scientific notation", "number is lost", "text", "5.76068E+09"]),
        ("5.76068e+09", ["spreadsheet"]),
        ("5E9", ["spreadsheet"]),
        ("5760678914.0", ["spreadsheet", "decimal", "text"]),
        ("5,760,678,914", ["spreadsheet", "thousands separators", "text"]),
        ("0726547506", ["CHI", "H&C"]),
        ("1503858677", ["CHI", "H&C"]),  # a real-format Scottish CHI number
        ("2791319840", ["CHI", "H&C"]),
        ("3572689430", ["CHI", "H&C"]),  # a Northern Ireland H&C number
    ],
)
def test_invalid_numbers_say_what_is_wrong(raw, says):
    with pytest.raises(InvalidNhsNumber) as caught:
        normalise(raw)
    message = str(caught.value)
    assert "NHS number" in message
    for words in says:
        assert words in message, f"{words!r} not in {message!r}"


@pytest.mark.parametrize("raw", ["0726547506", "1503858677", "2791319840", "3572689430"])
def test_chi_and_h_and_c_examples_do_have_a_valid_check_digit(raw):
    # so the range rule, not the check digit, is what rejects them above
    assert check_digit(raw[:9]) == raw[9]


@pytest.mark.parametrize(
    ("first_nine", "expected"),
    [
        ("999999999", "9"),
        ("576067891", "4"),
        ("943476591", "9"),
        ("917077201", "0"),  # 11 - 0 = 11 means 0
        ("000000000", "0"),
        ("961425548", None),  # 11 - 1 = 10: no valid number
        ("100000001", None),
    ],
)
def test_check_digit(first_nine, expected):
    assert check_digit(first_nine) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("5760678914", "******8914"),
        ("9999999999", "******9999"),
        ("8914", "8914"),
        ("", ""),
    ],
)
def test_mask_keeps_only_the_last_four_digits(number, expected):
    assert mask(number) == expected


def test_non_ascii_digit_is_an_invalid_nhs_number_not_a_crash():
    with pytest.raises(InvalidNhsNumber):
        normalise("²760678914")
