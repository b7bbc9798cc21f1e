"""Personal data in complaint text: mobile numbers and resident ID numbers are masked."""

from __future__ import annotations

import pytest

from streams.masking import mask_pii


@pytest.mark.parametrize(
    "text, masked",
    [
        ("手机号13800138000请回电", "手机号138****8000请回电"),
        ("电话+8613800138000", "电话+86138****8000"),
        ("电话+86 13800138000转", "电话+86 138****8000转"),
        ("身份证440301199001011234投诉", "身份证440301********1234投诉"),
        ("身份证44030119900101123X号", "身份证440301********123X号"),
        ("身份证44030120001231123x", "身份证440301********123x"),
    ],
    ids=["mobile-in-chinese", "plus86", "plus86-space", "resident-id", "id-X", "id-lower-x"],
)
def test_pii_inside_chinese_text_is_masked(text, masked):
    assert mask_pii(text) == masked


def test_several_numbers_in_one_text_are_all_masked():
    text = "联系13800138000或13900139000，身份证440301199001011234"
    assert mask_pii(text) == "联系138****8000或139****9000，身份证440301********1234"


@pytest.mark.parametrize(
    "text",
    ["订单号2024138001380001", "流水138001380001", "金额13800元", "座机12345678901", "发票4403011990130112345"],
    ids=["order-number", "12-digit-run", "amount", "not-13-19", "19-digit-run"],
)
def test_numbers_that_are_not_pii_are_left_alone(text):
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    "text, masked",
    [
        ("发票代码044031900111", "发票代码044031900111"),
        ("发票号码：044031900111", "发票号码：044031900111"),
        ("invoice code 044031900111", "invoice code 044031900111"),
        ("发票代码0769-22123456", "发票代码0769-****3456"),
        ("电话号码076922123456", "电话号码0769****3456"),
        ("发票代码044031900111，电话076922123456", "发票代码044031900111，电话0769****3456"),
    ],
    ids=["invoice-code", "invoice-number-colon", "english", "separated-is-a-phone", "phone-number-word", "both"],
)
def test_an_invoice_code_is_not_a_landline_but_a_phone_number_after_it_is(text, masked):
    assert mask_pii(text) == masked


def test_an_id_number_with_an_impossible_birth_date_is_not_an_id():
    assert mask_pii("编号440301199013011234") == "编号440301199013011234"


@pytest.mark.parametrize(
    "text",
    ["手机号13800138000", "+86 13800138000", "身份证44030119900101123X，手机13900139000"],
)
def test_masking_twice_is_masking_once(text):
    once = mask_pii(text)
    assert once != text
    assert mask_pii(once) == once


def test_a_resident_id_right_after_latin_letters_is_masked():
    assert mask_pii("证件ID440301199001011234") == "证件ID440301********1234"


def test_an_id_number_that_is_also_a_valid_credit_code_is_still_masked():
    """Its ID check digit is right: a person's number wins over an enterprise's."""
    assert mask_pii("身份证440301199001010469") == "身份证440301********0469"


def test_characters_around_masked_numbers_are_returned_as_sent():
    text = "（投诉人）：手机１３８００１３８０００，地址：东莞市长安镇１２号。"
    assert mask_pii(text) == "（投诉人）：手机１３８****８０００，地址：东莞市长安镇１２号。"


def test_text_without_personal_data_is_returned_unchanged_even_when_not_normalised():
    text = "ＡＢＣ公司，２０２４年３月，产品有质量问题！"
    assert mask_pii(text) is text


def test_a_number_spread_over_characters_that_normalise_to_several_is_masked_in_place():
    # "㈱" normalises to "(株)" (3 characters): positions after it must still line up.
    assert mask_pii("㈱联系13800138000") == "㈱联系138****8000"
