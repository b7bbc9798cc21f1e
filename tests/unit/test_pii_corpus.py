"""A corpus of personal data as people write it in complaints (Chinese text, full-width
characters, prefixes and separators) and of numbers that are not personal data: each is
masked exactly as shown, or left exactly as sent."""

from __future__ import annotations

import re
import unicodedata

import pytest

from streams.masking import mask_pii

MASKED = [
    # mainland mobiles
    ("mobile-plain", "手机号13800138000，请回电", "手机号138****8000，请回电"),
    ("mobile-spaces", "手机 138 0013 8000 请回电", "手机 138 **** 8000 请回电"),
    ("mobile-dashes", "电话：138-0013-8000。", "电话：138-****-8000。"),
    ("mobile-plus86-dashes", "电话+86-138-0013-8000", "电话+86-138-****-8000"),
    ("mobile-0086", "电话0086 13800138000", "电话0086 138****8000"),
    ("mobile-86", "联系8613912345678", "联系86139****5678"),
    ("mobile-paren-plus86", "电话(+86)13800138000", "电话(+86)138****8000"),
    ("mobile-full-width", "１３８００１３８０００", "１３８****８０００"),
    ("mobile-full-width-prefix", "电话＋８６ １３８－００１３－８０００", "电话＋８６ １３８－****－８０００"),
    ("mobile-full-width-spaces", "手机：１３８ ００１３ ８０００。", "手机：１３８ **** ８０００。"),
    ("mobile-ideographic-space", "手机　139　1234　5678", "手机　139　****　5678"),
    ("mobile-en-dash", "Tel 186–2000–1234.", "Tel 186–****–1234."),
    ("mobile-before-digit-word", "手机13800138000 2号楼", "手机138****8000 2号楼"),
    # landlines
    ("landline-hyphen", "座机0769-22123456", "座机0769-****3456"),
    ("landline-no-hyphen", "座机076922123456", "座机0769****3456"),
    ("landline-parentheses", "座机（0769）22123456", "座机（0769）****3456"),
    ("landline-ascii-parentheses", "电话(0769)2212 3456转801", "电话(0769)**** 3456转801"),
    ("landline-guangzhou", "广州020-87654321", "广州020-****4321"),
    ("landline-beijing-no-hyphen", "北京01087654321", "北京010****4321"),
    ("landline-7-digits", "县城0763-2123456", "县城0763-***3456"),
    ("landline-international", "+86 769 22123456", "+86 769 ****3456"),
    ("landline-full-width", "电话０７６９－２２１２３４５６", "电话０７６９－****３４５６"),
    # e-mail addresses
    ("email", "邮箱zhangsan@163.com谢谢", "邮箱z*******@163.com谢谢"),
    ("email-dots-plus", "邮箱 Li.Si+tag@mail.example.com.cn，", "邮箱 L********@mail.example.com.cn，"),
    ("email-qq-number", "QQ邮箱12345678@qq.com", "QQ邮箱1*******@qq.com"),
    ("email-full-width", "邮箱ｗａｎｇ＠ｑｑ．ｃｏｍ", "邮箱ｗ***＠ｑｑ．ｃｏｍ"),
    ("email-holding-a-mobile", "13800138000@139.com", "1**********@139.com"),
    # resident ID numbers
    ("id-18", "身份证440301199001011234投诉", "身份证440301********1234投诉"),
    ("id-18-x", "身份证44030119900101123X", "身份证440301********123X"),
    ("id-18-spaced-6-8-4", "身份证440301 19900101 1234", "身份证440301 ******** 1234"),
    ("id-18-groups-of-4", "身份证 4403 0119 9001 0112 34", "身份证 4403 01** **** **12 34"),
    ("id-18-full-width", "身份证４４０３０１１９９００１０１１２３４", "身份证４４０３０１********１２３４"),
    ("id-18-latin-before", "证件ID440301199001011234", "证件ID440301********1234"),
    ("id-15", "老身份证440301900101123", "老身份证440301******123"),
    ("id-15-spaced", "老身份证 440301 900101 123", "老身份证 440301 ****** 123"),
    # bank cards (Luhn-valid)
    ("card-19", "卡号6222021234567890128", "卡号622202*********0128"),
    ("card-groups", "卡号6222 0212 3456 7890 128", "卡号6222 02** **** ***0 128"),
    ("card-dashes", "卡号6222-0212-3456-7890-128", "卡号6222-02**-****-***0-128"),
    ("card-visa", "visa 4111 1111 1111 1111", "visa 4111 11** **** 1111"),
    ("card-amex-4-6-5", "卡 3782 822463 10005", "卡 3782 82**** *0005"),
    ("card-full-width", "卡号６２２８４８００１２３４５６７１", "卡号６２２８４８******５６７１"),
    # several in one text
    ("mixed", "联系13800138000或13900139000，身份证440301199001011234，邮箱a.b@x.cn",
     "联系138****8000或139****9000，身份证440301********1234，邮箱a**@x.cn"),
    ("mixed-widths", "手机１３８00138000，座机0769－22123456", "手机１３８****8000，座机0769－****3456"),
]

NOT_PII = [
    ("order-number-21-digits", "订单号202403011234567890123"),
    ("order-number-16-digits-luhn-valid", "订单号2024030112345678"),  # passes Luhn, but a year is no card issuer
    ("order-number-16-digits", "订单号2024138001380001不是手机号"),
    ("order-number-letters", "快递单号SF1380013800012"),
    ("amount", "金额13800元"),
    ("amount-thousands", "金额1,380,013.80元"),
    ("amount-decimal", "价格138.00元，数量13800138件"),
    ("date-iso", "日期2024-03-01"),
    ("date-chinese", "日期2024年3月1日 13:80"),
    ("date-compact", "日期20240301"),
    ("unix-time", "时间1710032400"),
    ("postcode", "邮编523000"),
    ("uscc", "统一社会信用代码914403001922038216"),
    ("uscc-digits-luhn-valid", "信用代码914419000000000411"),  # passes Luhn: a valid USCC is no card
    ("uscc-id-shaped", "信用代码440301199001000071"),  # a valid USCC whose ID check digit is wrong
    ("uscc-letters", "营业执照91440300MA5D12345X"),
    ("not-13-to-19", "工号12345678901"),
    ("impossible-birth-date", "编号440301199013011234"),
    ("19-digit-run", "发票4403011990130112345"),
    ("card-failing-luhn", "卡号6222021234567890123"),
    ("plate", "车牌粤S12345"),
    ("version", "版本v13.800.138000"),
]


@pytest.mark.parametrize("text, masked", [(t, m) for _, t, m in MASKED], ids=[i for i, _, _ in MASKED])
def test_personal_data_is_masked_keeping_what_an_analyst_needs(text, masked):
    assert mask_pii(text) == masked


@pytest.mark.parametrize("text", [t for _, t in NOT_PII], ids=[i for i, _ in NOT_PII])
def test_numbers_that_are_not_personal_data_are_left_exactly_as_sent(text):
    assert mask_pii(text) == text


def test_the_corpus_has_at_least_forty_cases_with_chinese_and_full_width_text():
    texts = [t for _, t, _ in MASKED] + [t for _, t in NOT_PII]
    assert len(texts) >= 40
    assert sum(bool(re.search("[\u4e00-\u9fff]", t)) for t in texts) >= 40
    assert sum(not unicodedata.is_normalized("NFKC", t) for t in texts) >= 8


@pytest.mark.parametrize("text", [t for _, t, _ in MASKED], ids=[i for i, _, _ in MASKED])
def test_masking_twice_is_masking_once_and_keeps_the_length(text):
    once = mask_pii(text)
    assert mask_pii(once) == once
    assert len(once) == len(text)


@pytest.mark.parametrize("text", [t for _, t, _ in MASKED], ids=[i for i, _, _ in MASKED])
def test_at_least_three_characters_are_hidden_and_no_run_longer_than_an_issuer_or_region_is_left(text):
    masked = unicodedata.normalize("NFKC", mask_pii(text))
    assert masked.count("*") >= 3
    assert max(map(len, re.findall("[0-9]+", masked)), default=0) <= 6
