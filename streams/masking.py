"""Masking of personal data in free text (complaints) before it is stored or published.

Each character is first normalised with NFKC (full-width digits, ``＠``, ``＋``, ``－``,
ideographic spaces become their ASCII forms), then these are masked:

============================  ==========================================  ====================
what                          formats                                     kept for an analyst
============================  ==========================================  ====================
e-mail address                ``name@example.com``                        first character of
                                                                          the name, the domain
resident ID number, 18 digits 17 digits + digit or X, a birth date        region (6) and last 4
                              19xx/20xx inside; spaces or dashes allowed  (the birth date is
                                                                          masked)
resident ID number, 15 digits region + YYMMDD + 3 digits                  region (6) and last 3
mainland mobile               11 digits ``1[3-9]…``; ``+86``, ``0086``,   prefix, first 3 and
                              ``86``, ``(+86)`` prefixes; spaces/dashes   last 4
landline                      area code ``010``, ``02x``, ``0xxx``        area code and last 4
                              (``0769-22123456``, ``(0769)22123456``,
                              ``076922123456``, ``+86 769 22123456``),
                              local number of 7 or 8 digits
bank card number              13–19 digits passing the Luhn check, with   first 6 (the issuer)
                              an issuer prefix (3–6, 9 or 2221–2720:      and last 4
                              not a year), unbroken or in groups of 4
                              (or 4-6-5)
============================  ==========================================  ====================

A landline written as one unbroken run of digits right after a document-number word
(发票, 代码, 编号, 单号, 订单, 税号, invoice, code, ...) is left alone: a 12-digit VAT invoice
code (``044031900111``) has exactly a landline's shape.

Masking replaces each hidden digit or letter by ``*`` and keeps separators, so the result
has the same shape; characters outside the masked numbers are returned exactly as sent
(full-width punctuation stays), and masked numbers show their kept digits as sent.
Python's ``\\b`` sees no boundary next to Chinese characters, so numbers are delimited with
digit look-arounds: a number inside a longer digit run (an order number) is not masked.
An 18-character code that is a valid Unified Social Credit Code and not a valid ID number
is an enterprise, not a person, and is left alone.  Identifiers (``event_id``,
``complaint_id``, ...) are not free text and are not masked.

>>> mask_pii("手机号13800138000，请回电")
'手机号138****8000，请回电'
>>> mask_pii("电话＋８６ １３８－００１３－８０００")
'电话＋８６ １３８－****－８０００'
>>> mask_pii("身份证440301199001011234投诉")
'身份证440301********1234投诉'
>>> mask_pii("座机(0769)22123456，邮箱zhang.san@qq.com")
'座机(0769)****3456，邮箱z********@qq.com'
>>> mask_pii("卡号6222 0212 3456 7890 128")
'卡号6222 02** **** ***0 128'
>>> mask_pii("订单号2024138001380001不是手机号，金额13800元")
'订单号2024138001380001不是手机号，金额13800元'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable

from streams.uscc import is_valid_uscc

# A separator inside a number (after NFKC): space, the hyphens and dashes, zero-width space.
_S = "[ \\-\u2010\u2012-\u2015\u2212\u200b]"
_O = f"{_S}?"  # optional separator


def _spaced(*classes: str) -> str:
    """Character classes joined by optional separators: ``1 380 0138000`` as ``1[3-9]…``."""
    return _O.join(classes)


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9\-])"
)
_MONTH = f"(?:0{_O}[1-9]|1{_O}[0-2])"
_DAY = f"(?:0{_O}[1-9]|[12]{_O}[0-9]|3{_O}[01])"
_REGION = _spaced("[1-9]", *["[0-9]"] * 5)
_ID18 = re.compile(
    f"(?<![0-9]){_REGION}{_O}(?:1{_O}9|2{_O}0){_O}{_spaced('[0-9]', '[0-9]')}{_O}{_MONTH}{_O}{_DAY}{_O}"
    f"{_spaced('[0-9]', '[0-9]', '[0-9]', '[0-9Xx]')}(?![0-9Xx])"
)
_ID15 = re.compile(
    f"(?<![0-9]){_REGION}{_O}{_spaced('[0-9]', '[0-9]')}{_O}{_MONTH}{_O}{_DAY}{_O}"
    f"{_spaced('[0-9]', '[0-9]', '[0-9]')}(?![0-9])"
)
_MOBILE = re.compile(
    f"(?<![0-9])(?P<prefix>(?:\\(?(?:\\+|00)86\\)?|86){_O})?(?P<body>{_spaced('1', '[3-9]', *['[0-9]'] * 9)})(?![0-9])"
)
_LOCAL = f"[2-9][0-9]{{2,3}}{_O}[0-9]{{4}}"
_LANDLINE = re.compile(
    f"(?<![0-9])(?P<area>(?:\\+|00)86{_O}\\(?(?:10|2[0-9]|[3-9][0-9]{{2}})\\)?{_O}"
    f"|\\((?:010|02[0-9]|0[3-9][0-9]{{2}})\\){_O}|(?:010|02[0-9]|0[3-9][0-9]{{2}}){_O})"
    f"(?P<local>{_LOCAL})(?![0-9])"
)
_CARD = re.compile(
    "(?<![0-9])(?:[0-9]{13,19}(?![0-9])"
    f"|(?<![0-9]{_S})(?:[0-9]{{4}}({_S})[0-9]{{4}}\\1[0-9]{{4}}\\1[0-9]{{1,4}}(?:\\1[0-9]{{1,3}})?"
    f"|[0-9]{{4}}({_S})[0-9]{{6}}\\2[0-9]{{4,5}})(?![0-9])(?!{_S}[0-9]))"
)
_SEPARATORS = frozenset(" -\u2010\u2012\u2013\u2014\u2015\u2212\u200b()+")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _keep(text: str, head: int, tail: int) -> str:
    """``text`` with every digit or letter but the first ``head`` and last ``tail`` as ``*``.

    >>> _keep("138-0013-8000", 3, 4)
    '138-****-8000'
    """
    total = sum(c not in _SEPARATORS for c in text)
    out, seen = [], 0
    for c in text:
        if c in _SEPARATORS:
            out.append(c)
            continue
        out.append(c if seen < head or seen >= total - tail else "*")
        seen += 1
    return "".join(out)


def _digits(text: str) -> str:
    return "".join(c for c in text if c not in _SEPARATORS)


def _id_check_ok(code: str) -> bool:
    """The ISO 7064 MOD 11-2 check character of an 18-character resident ID number."""
    total = sum(int(c) * w for c, w in zip(code[:17], _ID_WEIGHTS))
    return "10X98765432"[total % 11] == code[17].upper()


def _luhn_ok(digits: str) -> bool:
    """The Luhn check of a card number.

    >>> _luhn_ok("4111111111111111"), _luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _email(m: re.Match) -> str:
    local, domain = m.group().split("@", 1)
    return local[0] + "*" * (len(local) - 1) + "@" + domain


def _id18(m: re.Match) -> str:
    code = _digits(m.group())
    if is_valid_uscc(code) and not _id_check_ok(code):
        return m.group()  # an enterprise's credit code that happens to look like an ID number
    return _keep(m.group(), 6, 4)


# Words after which an unbroken run of digits is a document number, not a telephone: a
# 12-digit VAT invoice code (发票代码 044031900111) reads exactly like a landline with its
# area code.  A landline written with a separator or parentheses is masked whatever precedes it.
_DOCUMENT_NUMBER = re.compile("(?:发票|票据|代码|编码|编号|单号|订单|税号|合同号|invoice|code|no\\.)"
                              f"(?:{_S}|[:：#号码为是])*$", re.IGNORECASE)


def _landline(m: re.Match) -> str:
    """A landline, unless it is an unbroken digit run right after a document-number word.

    >>> _LANDLINE.sub(_landline, "发票代码：044031900111，电话076922123456")
    '发票代码：044031900111，电话0769****3456'
    """
    if m.group().isdigit() and _DOCUMENT_NUMBER.search(m.string, max(0, m.start() - 12), m.start()):
        return m.group()
    return m.group("area") + _keep(m.group("local"), 0, 4)


def _card(m: re.Match) -> str:
    digits = _digits(m.group())
    issuer = digits[0] in "34569" or 2221 <= int(digits[:4]) <= 2720  # ISO/IEC 7812 banking ranges
    if not issuer or not _luhn_ok(digits) or (len(digits) == 18 and is_valid_uscc(digits)):
        return m.group()
    return _keep(m.group(), 6, 4)


# In this order: an e-mail may hold a mobile number, an ID number or mobile may pass the Luhn check.
_RULES: tuple[tuple[re.Pattern, Callable[[re.Match], str]], ...] = (
    (_EMAIL, _email),
    (_ID18, _id18),
    (_ID15, lambda m: _keep(m.group(), 6, 3)),
    (_MOBILE, lambda m: (m.group("prefix") or "") + _keep(m.group("body"), 3, 4)),
    (_LANDLINE, _landline),
    (_CARD, _card),
)
_CANDIDATE = re.compile("[0-9@]")


@lru_cache(maxsize=4096)
def _nfkc(char: str) -> str:
    return unicodedata.normalize("NFKC", char)


def mask_pii(text: str) -> str:
    """Return ``text`` with e-mail addresses, resident ID numbers, mobile and landline
    numbers and bank card numbers masked (see the module docstring for what is kept).

    Masking twice is masking once: what is left of a masked number no longer matches.
    """
    flat = text if unicodedata.is_normalized("NFKC", text) else "".join(map(_nfkc, text))
    if not _CANDIDATE.search(flat):
        return text
    masked = flat
    for pattern, mask in _RULES:
        masked = pattern.sub(mask, masked)
    if masked == flat:
        return text
    if flat is text:
        return masked
    # Every mask keeps the length: give back each original character whose normal form was not touched.
    out, at = [], 0
    for char in text:
        normal = _nfkc(char)
        piece = masked[at:at + len(normal)]
        out.append(char if piece == normal else piece)
        at += len(normal)
    return "".join(out)
