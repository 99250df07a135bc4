"""Masking of card numbers and マイナンバー (issue #3 groundwork; rules in docs/masking.md)."""

import pytest

from bot.handoff.masking import luhn_ok, mask_sensitive, my_number_ok


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("カードは4111 1111 1111 1111です", "カードは**** **** **** 1111です"),
        ("4111-1111-1111-1111", "****-****-****-1111"),
        ("４１１１−１１１１−１１１１−１１１１", "＊＊＊＊−＊＊＊＊−＊＊＊＊−１１１１".replace("＊", "*")),
        ("5555555555554444", "************4444"),
        ("カード番号は 1234 5678 9012 3456", "カード番号は **** **** **** 3456"),  # keyword: masked even if not Luhn
        ("マイナンバーは123456789018です", "マイナンバーは************です"),
        ("123456789018", "************"),  # valid check digit, no keyword
        ("個人番号：1234 5678 9012", "個人番号：**** **** ****"),  # keyword, wrong check digit
    ],
)
def test_sensitive_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_sensitive(raw) == masked


@pytest.mark.parametrize(
    "text",
    [
        "電話 090-1234-5678",
        "注文番号 1234567890123 です",  # 13 digits, fails Luhn, no keyword
        "受付番号 MN-12345678",
        "2026年11月23日 10:00",
        "〒100-0001",
        "",
        "12345678901234567890123",  # too long to be a card
    ],
)
def test_other_numbers_are_kept(text: str) -> None:
    assert mask_sensitive(text) == text


def test_check_digit_algorithms() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert my_number_ok("123456789018") and not my_number_ok("123456789012")
