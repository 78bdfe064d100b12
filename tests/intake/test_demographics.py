"""The demographic cross-check: the list's surname, date of birth and postcode against PKB's record."""

from __future__ import annotations

import datetime as dt

import pytest

from pkb_letters.intake.demographics import PkbDemographics, fold, mismatch_detail, mismatched_fields
from pkb_letters.records import PatientRow

ZOE = PatientRow(
    input_row=2, customer_ref="", nhs_number="7569602005", title="Ms", first_name="Zoë", last_name="O'Brien-Ng",
    date_of_birth=dt.date(1987, 3, 22), address_lines=("27 Headingley Lane", "LEEDS", "LS6 1BN"), postcode="LS6 1BN",
)


@pytest.mark.parametrize(
    ("written", "same_as"),
    [
        ("O'BRIEN-NG", "O'Brien-Ng"),
        ("obrien ng", "O'Brien-Ng"),
        ("O’Brien Ng", "O'Brien-Ng"),  # typographic apostrophe
        ("García-Pérez", "GARCIA PEREZ"),
        ("Zoë", "ZOE"),
        ("Zoe\u0308", "Zoë"),  # decomposed diaeresis
        ("Strauß", "STRAUSS"),
        ("ls61bn", "LS6 1BN"),
    ],
)
def test_fold_ignores_case_spacing_accents_and_hyphens(written, same_as):
    assert fold(written) == fold(same_as)


@pytest.mark.parametrize(("one", "other"), [("Robertson", "Robinson"), ("Smith", "Smyth"), ("LS6 1BN", "LS6 1BA")])
def test_fold_keeps_letters_apart(one, other):
    assert fold(one) != fold(other)


@pytest.mark.parametrize(
    ("pkb", "expected"),
    [
        (PkbDemographics("OBRIEN NG", dt.date(1987, 3, 22), "ls61bn"), []),
        (PkbDemographics(None, None, None), []),  # PKB said nothing: nothing to compare
        (PkbDemographics("", dt.date(1987, 3, 22), ""), []),
        (PkbDemographics("Brien", dt.date(1987, 3, 22), "LS6 1BN"), ["surname"]),
        (PkbDemographics("O'Brien-Ng", dt.date(1987, 2, 22), "LS6 1BN"), ["date of birth"]),
        (PkbDemographics("O'Brien-Ng", dt.date(1987, 3, 22), "LS8 5AN"), ["postcode"]),
        (PkbDemographics("Ng", dt.date(1978, 3, 22), "NE1 7RU"), ["surname", "date of birth", "postcode"]),
    ],
)
def test_mismatched_fields(pkb, expected):
    assert mismatched_fields(ZOE, pkb) == expected


def test_only_the_postcode_part_can_be_turned_off():
    pkb = PkbDemographics("Ng", dt.date(1978, 3, 22), "NE1 7RU")
    assert mismatched_fields(ZOE, pkb, check_postcode=False) == ["surname", "date of birth"]


def test_no_date_of_birth_on_the_list_is_not_a_mismatch():
    undated = PatientRow(**{**ZOE.__dict__, "date_of_birth": None})
    assert mismatched_fields(undated, PkbDemographics("O'Brien-Ng", dt.date(1987, 3, 22), "LS6 1BN")) == []


def test_address_abroad_has_no_postcode_to_compare():
    abroad = PatientRow(**{**ZOE.__dict__, "postcode": "", "postage": "europe"})
    assert mismatched_fields(abroad, PkbDemographics("O'Brien-Ng", None, "75001")) == []


@pytest.mark.parametrize(
    ("fields", "names"),
    [(["surname"], "surname"), (["surname", "postcode"], "surname and postcode"),
     (["surname", "date of birth", "postcode"], "surname, date of birth and postcode")],
)
def test_detail_names_the_fields_never_the_values(fields, names):
    detail = mismatch_detail(fields)
    assert f"different {names} from the list" in detail
    assert "NHS number" in detail
