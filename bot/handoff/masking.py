"""Mask card numbers and マイナンバー in customer text before it is stored or shown.

Rules (documented for agents and editors in docs/masking.md):

* Card numbers: 13–19 digits, optionally split by spaces or hyphens, half- or full-width,
  that pass the Luhn check -> every digit but the last four becomes ``*``
  (``4111 1111 1111 1111`` -> ``**** **** **** 1111``).
* マイナンバー (individual number): 12 digits, optionally split 4-4-4, whose check digit is
  valid -> all 12 digits become ``*``.
* Any 12–19 digit number right after a keyword (カード番号, クレジットカード, マイナンバー,
  個人番号) is masked even if its check digit is wrong: a mistyped number is still private.

Separators and width are kept, so the masked text reads like the original.
"""

from __future__ import annotations

import re
import unicodedata

_DIGIT = "[0-9０-９]"
_SEP = "[ \u3000\\-‐‑–—―−－ー]?"
# 12–19 digits with optional single separators between them, not glued to other digits.
_NUMBER = re.compile(rf"(?<![0-9０-９]){_DIGIT}(?:{_SEP}{_DIGIT}){{11,18}}(?![0-9０-９])")
_KEYWORD = re.compile(r"(カード番号|クレジットカード|クレカ|マイナンバー|個人番号)[はがを:：\s]*$")
_MY_NUMBER_WORDS = {"マイナンバー", "個人番号"}


def _digits(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn check used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def my_number_ok(digits: str) -> bool:
    """True when 12 ``digits`` carry a valid マイナンバー check digit."""
    if len(digits) != 12:
        return False
    body = [int(d) for d in digits[:11]][::-1]  # P1 is the digit just left of the check digit
    total = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(body, start=1))
    remainder = total % 11
    return int(digits[11]) == (0 if remainder <= 1 else 11 - remainder)


def _mask_digits(chunk: str, keep_last: int) -> str:
    total = sum(ch.isdigit() for ch in unicodedata.normalize("NFKC", chunk))
    seen = 0
    out = []
    for ch in chunk:
        if unicodedata.normalize("NFKC", ch).isdigit():
            seen += 1
            out.append(ch if seen > total - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_sensitive(text: str) -> str:
    """Return ``text`` with card numbers and マイナンバー masked (see module docstring)."""

    def replace(match: re.Match[str]) -> str:
        chunk = match.group(0)
        digits = _digits(chunk)
        keyword = _KEYWORD.search(text[max(0, match.start() - 12):match.start()])
        word = keyword.group(1) if keyword else None
        if len(digits) == 12 and (my_number_ok(digits) or word in _MY_NUMBER_WORDS):
            return _mask_digits(chunk, keep_last=0)
        if (13 <= len(digits) <= 19 and luhn_ok(digits)) or (word and word not in _MY_NUMBER_WORDS):
            return _mask_digits(chunk, keep_last=4)
        return chunk

    return _NUMBER.sub(replace, text)
