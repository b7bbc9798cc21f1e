"""GB 32100-2015 Unified Social Credit Code: check character, charset, length."""

from __future__ import annotations

import pytest

from streams.uscc import CHARSET, check_char, is_valid_uscc, make_uscc, uscc_problem

VALID = "914403001922038216"  # the SPEC §2 example


def test_the_spec_example_is_valid():
    assert is_valid_uscc(VALID)


def test_make_uscc_appends_the_check_character_of_the_spec_example():
    assert make_uscc(VALID[:17]) == VALID


def test_every_single_character_change_is_detected():
    changed = [VALID[:i] + c + VALID[i + 1:] for i in range(18) for c in CHARSET if c != VALID[i]]
    assert len(changed) == 18 * 30
    assert [code for code in changed if is_valid_uscc(code)] == []


def test_a_wrong_check_character_names_the_expected_one():
    assert uscc_problem(VALID[:17] + "7") == "check digit mismatch: expected 6, got 7"


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_letters_outside_the_charset_are_rejected(letter):
    assert letter not in CHARSET
    assert "not allowed" in uscc_problem(letter + VALID[1:])


def test_lowercase_letters_are_rejected():
    code = make_uscc("91440300MA5D12345")
    assert is_valid_uscc(code)
    assert not is_valid_uscc(code.lower())


@pytest.mark.parametrize("code", ["", VALID[:17], VALID + "0"], ids=["empty", "17-chars", "19-chars"])
def test_codes_that_are_not_18_characters_are_rejected(code):
    assert uscc_problem(code) == f"must be 18 characters, got {len(code)}"


def test_check_char_refuses_a_body_of_the_wrong_length():
    with pytest.raises(ValueError, match="expected 17"):
        check_char(VALID[:16])


def test_the_check_character_can_be_a_letter():
    bodies = (f"9144030019220{n:04d}" for n in range(200))
    assert any(check_char(b).isalpha() for b in bodies)
