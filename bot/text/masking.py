"""Mask card numbers and マイナンバー in customer text before it is stored or shown.

Rules (documented for agents and editors in docs/masking.md):

* A *number* is a run of digit groups, half- or full-width, joined by separators: one
  dash-like mark (``-``, ``‐``, ``－``, ``ー``, ``.``, ``．``, ``・`` ...) with up to two
  spaces on each side, or one to three spaces (half- or full-width).
* Card numbers: a whole number, or consecutive groups of 3 digits or more in it, with
  13–19 digits that pass the Luhn check -> every digit but the last four becomes ``*``
  (``4111 1111 1111 1111`` -> ``**** **** **** 1111``). Up to two short items right
  after the card, a security code (1–4 digits) or an expiry date (``12/25``), are
  masked completely: ``4111 1111 1111 1111 123`` -> ``**** **** **** 1111 ***``.
* マイナンバー (individual number): 12 digits at the start of a number with a valid check
  digit, alone or followed by one or two more digits (a slip of the finger), or a
  13-digit number whose first 12 digits are one -> all digits become ``*``.
* Keywords: a number of 12 digits or more right after カード番号, クレジットカード, クレカ
  (masked like a card, even if the Luhn check fails), マイナンバー or 個人番号 (masked
  completely, even if the check digit is wrong): a mistyped number is still private.
  3–4 digits right after セキュリティコード, CVV or CVC are masked completely.
* Not masked: telephone numbers (``090-1234-5678``, ``+81 90-...``), order numbers,
  dates, prices, postal codes, membership numbers such as ``MN-11223344``, and numbers
  that fail the checks without a keyword. A telephone number (by its group lengths) is
  never read as part of a card number or マイナンバー.
* Optional (editors' setting ``masking:`` in ``knowledge/triage.yml``, see
  :mod:`bot.text.masking_settings`): telephone numbers (all digits but the last four)
  and the local part of e-mail addresses (``***@example.com``).

Separators and width are kept, so the masked text reads like the original. Masking is
idempotent: masking a masked text changes nothing more.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

_D = "0-9０-９"
_SPACE = "[ \t\u3000]"
_DASH = "[\\-‐‑‒–—―−－ー.．・]"
_SEP = rf"(?:{_SPACE}{{0,2}}{_DASH}{_SPACE}{{0,2}}|{_SPACE}{{1,3}})"
# A number: digit groups joined by separators, not glued to other digits.
_RUN = re.compile(rf"(?<![{_D}])[{_D}]+(?:{_SEP}[{_D}]+)*")
_GROUP = re.compile(rf"[{_D}]+")
# What may follow a card and is masked with it: up to two of a security code (1–4 digits)
# or an expiry date (MM/YY, MM/YYYY); nothing numeric may follow it.
_TAIL_ITEM = rf"(?:[{_D}]{{1,2}}{_SPACE}?[/／]{_SPACE}?[{_D}]{{2,4}}|[{_D}]{{1,4}})"
_TAIL = re.compile(rf"(?:{_SEP}{_TAIL_ITEM}){{1,2}}(?![{_D}/／]|{_SEP}[{_D}])")

_CARD_WORDS = ("カード番号", "クレジットカード", "クレカ")
_MY_NUMBER_WORDS = ("マイナンバー", "個人番号")
_CODE_WORDS = ("セキュリティーコード", "セキュリティコード", "CVV2", "CVV", "CVC2", "CVC")
_KEYWORD = re.compile(
    "(" + "|".join(_CARD_WORDS + _MY_NUMBER_WORDS + _CODE_WORDS) + r")(?:カード)?(?:の?番号)?[はがをもで、,:\s]*$",
    re.IGNORECASE,
)
_KEYWORD_WINDOW = 24  # characters before a number searched for a keyword

# Preference among card lengths when several windows pass Luhn: the common lengths first,
# so that a 16-digit card followed by a 3-digit code is not read as one 19-digit card.
_CARD_LENGTH_ORDER = {16: 0, 15: 1, 14: 2, 19: 3, 18: 4, 17: 5}

_PHONE = re.compile(
    rf"(?<![{_D}A-Za-zＡ-Ｚａ-ｚ])"
    rf"(?:[+＋][8８][1１](?:{_SEP}|[(（])?[{_D}]{{1,4}}(?:{_SEP}|[)）])?[{_D}]{{1,4}}(?:{_SEP}|[)）])?[{_D}]{{3,4}}"
    rf"|[0０][{_D}]{{0,4}}(?:{_SEP}|[(（])?[{_D}]{{1,4}}(?:{_SEP}|[)）])?[{_D}]{{3,4}})"
    rf"(?![{_D}])"
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-Ａ-Ｚａ-ｚ０-９．＿％＋－])"
    r"([A-Za-z0-9._%+\-Ａ-Ｚａ-ｚ０-９．＿％＋－]+)"
    r"(?=[@＠][A-Za-z0-9\-Ａ-Ｚａ-ｚ０-９－]+(?:[.．][A-Za-z0-9\-Ａ-Ｚａ-ｚ０-９－]+)+)"
)


def _ascii_digits(text: str) -> str:
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


@dataclass(frozen=True)
class _Group:
    """One digit group of a number: its span in the text and its ASCII digits."""

    start: int
    end: int
    digits: str


class _Masker:
    """Collects the positions to mask in one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hidden: set[int] = set()

    def digits(self, spans: Iterable[tuple[int, int]], keep_last: int = 0) -> None:
        """Mask every digit in ``spans`` except the last ``keep_last`` of them."""
        positions = [i for start, end in spans for i in range(start, end) if self.text[i] in _DIGIT_SET]
        self.hidden.update(positions[: max(0, len(positions) - keep_last)])

    def result(self) -> str:
        return "".join("*" if i in self.hidden else ch for i, ch in enumerate(self.text))


_DIGIT_SET = frozenset("0123456789０１２３４５６７８９")


def _keyword_before(text: str, start: int) -> str | None:
    """``card``, ``my_number`` or ``code`` when a keyword ends right before ``start``."""
    before = unicodedata.normalize("NFKC", text[max(0, start - _KEYWORD_WINDOW):start])
    found = _KEYWORD.search(before)
    if not found:
        return None
    word = found.group(1).upper()
    if word in _MY_NUMBER_WORDS:
        return "my_number"
    if word in _CODE_WORDS:
        return "code"
    return "card"


# Japanese telephone numbers by group lengths: mobile / IP 3-4-4, landlines 2-4-4, 3-3-4,
# 4-2-4, 5-1-4, and 4-3-3 / 4-3-4 for the special prefixes only (0120, 0570, 0800...).
# No usual grouping of a card number, with or without a code after it, makes one.
_PHONE_SHAPES = {(3, 4, 4), (2, 4, 4), (3, 3, 4), (4, 2, 4), (5, 1, 4)}
_SPECIAL_PHONE_SHAPES = {(4, 3, 3), (4, 3, 4)}
_SPECIAL_PREFIXES = {"0120", "0570", "0800", "0990", "0180"}


def _phone_groups(groups: list[_Group], country_code: bool) -> set[int]:
    """Indexes of groups that form a Japanese telephone number (never part of a card)."""
    protected = {0} if country_code else set()
    for i, group in enumerate(groups):
        if not group.digits.startswith("0"):
            continue
        if 10 <= len(group.digits) <= 11:
            protected.add(i)
        shape = tuple(len(g.digits) for g in groups[i:i + 3])
        if shape in _PHONE_SHAPES or (shape in _SPECIAL_PHONE_SHAPES and group.digits in _SPECIAL_PREFIXES):
            protected.update((i, i + 1, i + 2))
    return protected


def _mask_keyword_run(masker: _Masker, groups: list[_Group], run_end: int, kind: str) -> None:
    """A number after a keyword: masked whatever its check digits say."""
    tail = _TAIL.match(masker.text, run_end)
    everything = [(g.start, g.end) for g in groups] + ([tail.span()] if tail else [])
    if kind == "my_number":
        masker.digits(everything)
        return
    # Card: keep the last four digits of the card itself, not of a code or date after it.
    best: tuple[int, int, int] | None = None
    count = 0
    for k, group in enumerate(groups):
        count += len(group.digits)
        if 12 <= count <= 19 and (k == len(groups) - 1 or _TAIL.match(masker.text, group.end)):
            candidate = (abs(count - 16), -count, k)
            best = candidate if best is None else min(best, candidate)
    card_end = best[2] if best else len(groups) - 1
    masker.digits(everything)
    masker.hidden.difference_update(_last_digits(masker.text, groups[:card_end + 1], 4))


def _last_digits(text: str, groups: list[_Group], count: int) -> set[int]:
    positions = [i for g in groups for i in range(g.start, g.end) if text[i] in _DIGIT_SET]
    return set(positions[-count:]) if count else set()


def _mask_checked_run(masker: _Masker, groups: list[_Group], country_code: bool) -> None:
    """A number without keyword: mask the windows of whole groups that pass a check.

    A window is *clean* when it ends the number or is followed only by a code or an
    expiry date (card) or by one or two stray digits (マイナンバー); a clean window is
    masked together with what follows it, so at most four digits from its start on stay
    readable. Windows are taken best first: clean ones, leftmost (nothing before it is
    left readable), cards before マイナンバー, common card lengths. A Luhn-valid card that
    is not clean (followed by other digits) is masked too.
    """
    protected = _phone_groups(groups, country_code)
    last = len(groups) - 1
    candidates: list[tuple[tuple[int, int, int, int], int, int, int, bool]] = []
    for j, group in enumerate(groups):
        if j in protected:
            continue
        tail = None if j == last else _TAIL.match(masker.text, group.end)
        clean = j == last or tail is not None
        stray = j == last or (j + 1 == last and len(groups[last].digits) <= 2)
        digits = ""
        shaped = True
        for i in range(j, -1, -1):
            if i in protected:
                break
            digits = groups[i].digits + digits
            shaped = shaped and len(groups[i].digits) >= 3
            length = len(digits)
            if length > 19:
                break
            if not shaped and (i, j) != (0, last):
                continue  # part of a number: only in groups of 3 digits or more, as cards are written
            if 14 <= length <= 19 and luhn_ok(digits):
                candidates.append(((0 if clean else 1, i, 0, _CARD_LENGTH_ORDER[length]), i, j, 4, clean))
            elif i == 0 and stray and length == 12 and my_number_ok(digits):
                candidates.append(((0, i, 1, 0), i, j, 0, True))
            elif i == 0 and stray and length == 13 and my_number_ok(digits[:12]):
                candidates.append(((0, i, 2, 0), i, j, 0, True))
            elif clean and length == 13 and luhn_ok(digits):
                candidates.append(((0, i, 3, 0), i, j, 4, True))
    taken = [False] * len(groups)
    for _, i, j, keep, clean in sorted(candidates):
        if any(taken[i:j + 1]):
            continue
        taken[i:j + 1] = [True] * (j + 1 - i)
        masker.digits([(g.start, g.end) for g in groups[i:j + 1]], keep_last=keep)
        if clean and j < last:  # the code, date or stray digits after the window
            taken[j + 1:] = [True] * (last - j)
            tail = _TAIL.match(masker.text, groups[j].end)
            masker.digits([tail.span() if tail else (groups[j + 1].start, groups[last].end)])


def _mask_numbers(text: str) -> str:
    masker = _Masker(text)
    for run in _RUN.finditer(text):
        groups = [_Group(run.start() + m.start(), run.start() + m.end(), _ascii_digits(m.group()))
                  for m in _GROUP.finditer(run.group())]
        total = sum(len(g.digits) for g in groups)
        kind = _keyword_before(text, run.start())
        if kind == "code" and len(groups) == 1 and 3 <= total <= 4:
            masker.digits([(run.start(), run.end())])
        elif kind in ("card", "my_number") and total >= 12:
            _mask_keyword_run(masker, groups, run.end(), kind)
        else:
            country_code = run.start() > 0 and text[run.start() - 1] in "+＋"
            _mask_checked_run(masker, groups, country_code)
    return masker.result()


def _mask_phones(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        chunk = match.group(0)
        digits = _ascii_digits(chunk)
        national = digits[2:] if chunk[0] in "+＋" else digits
        expected = (9, 10) if chunk[0] in "+＋" else (10, 11)
        if len(national) not in expected:
            return chunk
        masker = _Masker(chunk)
        masker.digits([(0, len(chunk))], keep_last=4)
        return masker.result()

    return _PHONE.sub(replace, text)


def _mask_emails(text: str) -> str:
    return _EMAIL.sub("***", text)


def mask_sensitive(text: str, *, phone: bool = False, email: bool = False) -> str:
    """Return ``text`` with card numbers and マイナンバー masked (see module docstring).

    Args:
        text: Customer (or any) text.
        phone: Also mask telephone numbers (all digits but the last four).
        email: Also mask the local part of e-mail addresses.

    Returns:
        The masked text; the same text when nothing sensitive was found.
    """
    if not text:
        return text
    masked = _mask_numbers(text)
    if phone:
        masked = _mask_phones(masked)
    if email:
        masked = _mask_emails(masked)
    return masked
