"""Masking of personal data in free text (complaints) before it is stored or published.

Mainland mobile numbers (11 digits starting 13–19) and 18-digit resident ID numbers
(17 digits + a digit or X) are masked.  Python's ``\\b`` does not see a boundary next to
Chinese characters, so the patterns use digit look-arounds instead.

>>> mask_pii("手机号13800138000，请回电")
'手机号138****8000，请回电'
>>> mask_pii("身份证440301199001011234投诉")
'身份证440301********1234投诉'
>>> mask_pii("订单号2024138001380001不是手机号")
'订单号2024138001380001不是手机号'
"""

from __future__ import annotations

import re

# An ID number: 6-digit region, birth date 19xx/20xx-MM-DD, 3-digit sequence, check digit/X.
_RESIDENT_ID = re.compile(
    r"(?<!\d)([1-9]\d{5})((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(\d{3}[0-9Xx])(?![0-9Xx])"
)
# Optional +86 / 86 prefix, then 1[3-9] + 9 digits, not inside a longer digit run.
_MOBILE = re.compile(r"(?<!\d)((?:\+?86[- ]?)?1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_pii(text: str) -> str:
    """Return ``text`` with resident ID numbers and mobile numbers masked.

    ID numbers keep their 6-digit region and last 4 characters; mobile numbers keep
    their first 3 and last 4 digits.
    """
    text = _RESIDENT_ID.sub(lambda m: f"{m.group(1)}{'*' * 8}{m.group(3)[-4:]}", text)
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
