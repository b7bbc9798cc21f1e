"""Unified Social Credit Code (统一社会信用代码, GB 32100-2015).

An 18-character code: registration authority, entity type, 6-digit region code,
9-character organisation code, and a check character computed over the first 17.

>>> is_valid_uscc("914403001922038216")
True
>>> is_valid_uscc("914403001922038217")
False
>>> check_char("91440300192203821")
'6'
"""

from __future__ import annotations

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(CHARSET)}


def check_char(first17: str) -> str:
    """The check character for the first 17 characters of a USCC.

    Raises ``ValueError`` if a character is outside the GB 32100 charset.
    """
    if len(first17) != 17:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    try:
        total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not allowed in a USCC") from None
    return CHARSET[(31 - total % 31) % 31]


def uscc_problem(code: str, *, quote: bool = True) -> str | None:
    """Why ``code`` is not a valid USCC, or ``None`` if it is.

    With ``quote=False`` the reason names the rule and a position but no character of
    ``code`` (what a dead letter's detail may say: the input can hold anything).

    >>> uscc_problem("91440300192203821X")
    'check digit mismatch: expected 6, got X'
    >>> uscc_problem("91440300192203821X", quote=False)
    'check digit mismatch: the 18th character is not the check character of the first 17'
    >>> uscc_problem("9144030019220382 6", quote=False)
    'character 17 is not allowed (charset 0123456789ABCDEFGHJKLMNPQRTUWXY)'
    """
    if len(code) != 18:
        return f"must be 18 characters, got {len(code)}"
    at = next((i for i, c in enumerate(code) if c not in _VALUE), None)
    if at is not None:
        return f"character {code[at]!r} is not allowed (charset {CHARSET})" if quote else \
            f"character {at + 1} is not allowed (charset {CHARSET})"
    expected = check_char(code[:17])
    if code[17] != expected:
        return f"check digit mismatch: expected {expected}, got {code[17]}" if quote else \
            "check digit mismatch: the 18th character is not the check character of the first 17"
    return None


def is_valid_uscc(code: str) -> bool:
    """True when ``code`` is 18 characters of the charset with a correct check digit."""
    return uscc_problem(code) is None


def make_uscc(body17: str) -> str:
    """Append the check character to a 17-character body.

    >>> make_uscc("91440300192203821")
    '914403001922038216'
    """
    return body17 + check_char(body17)
