"""Masking of card numbers and マイナンバー (issues #3 and #11; rules in docs/masking.md)."""

import dataclasses
from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.text.masking import luhn_ok, mask_sensitive, my_number_ok
from bot.settings import PROJECT_ROOT, get_settings

FW = str.maketrans("0123456789", "０１２３４５６７８９")


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


# --- issue #11: formats the first rules missed, and what must stay readable -------------

MASKED = [
    # card number followed by a security code or an expiry date
    ("4111 1111 1111 1111 123", "**** **** **** 1111 ***"),
    ("4111-1111-1111-1111 12/25", "****-****-****-1111 **/**"),
    ("4111 1111 1111 1111 12/25 123", "**** **** **** 1111 **/** ***"),
    ("カードは4111111111111111 1234です", "カードは************1111 ****です"),
    ("カード番号 4111 1111 1111 1112 123", "カード番号 **** **** **** 1112 ***"),  # keyword, not Luhn, + code
    # separators: " - ", ".", double spaces, other dashes
    ("4111 - 1111 - 1111 - 1111", "**** - **** - **** - 1111"),
    ("4111.1111.1111.1111", "****.****.****.1111"),
    ("4111  1111  1111  1111", "****  ****  ****  1111"),
    ("4111‐1111‐1111‐1111", "****‐****‐****‐1111"),
    ("4111ー1111ー1111ー1111", "****ー****ー****ー1111"),
    # full-width digits and separators
    ("４１１１　１１１１　１１１１　１１１１", "****　****　****　１１１１"),
    ("４１１１．１１１１．１１１１．１１１１", "****．****．****．１１１１"),
    ("４１１１ － １１１１ － １１１１ － １１１１", "**** － **** － **** － １１１１"),
    ("４１１１－１１１１－１１１１－１１１１ １２／２５", "****－****－****－１１１１ **／**"),
    # other card lengths and several cards
    ("3782 822463 10005", "**** ****** *0005"),  # American Express 4-6-5
    ("5555 5555 5555 4444", "**** **** **** 4444"),
    ("4111111111111111 5555555555554444", "************1111 ************4444"),
    ("2025/12/25 に 4111111111111111 で払いました", "2025/12/25 に ************1111 で払いました"),
    ("注文番号 1234-5678-90、カード 4111 1111 1111 1111", "注文番号 1234-5678-90、カード **** **** **** 1111"),
    # keyword phrasings
    ("クレジットカードの番号は4111-1111-1111-1112です", "クレジットカードの番号は****-****-****-1112です"),
    ("ｸﾚｼﾞｯﾄｶｰﾄﾞ 1234 5678 9012 3456", "ｸﾚｼﾞｯﾄｶｰﾄﾞ **** **** **** 3456"),
    ("セキュリティコードは123です", "セキュリティコードは***です"),
    ("CVV: 1234", "CVV: ****"),
    # マイナンバー, also followed by one more digit
    ("マイナンバーは1234 5678 9018 5です", "マイナンバーは**** **** **** *です"),
    ("マイナンバーは1234567890185です", "マイナンバーは*************です"),
    ("123456789018 7", "************ *"),
    ("1234567890187", "*************"),
    ("１２３４５６７８９０１８", "************"),
    ("1234.5678.9018", "****.****.****"),
    ("マイナンバーカードの番号は123456789012です", "マイナンバーカードの番号は************です"),
]

KEPT = [
    "注文番号 1234-5678-90",
    "注文番号は 1234-5678-90 です",
    "090-1234-5678",
    "03-1234-5678",
    "０９０－１２３４－５６７８",
    "080 1234 5678",
    "0120-123-456",
    "+81 90-1234-5678",
    "電話 090-1234-5678 03-1234-5678",
    "電話 090-1234-5678 / 03-1234-5678",
    "03-1234-5678 090-1234-5678",
    "2025/12/25",
    "2025.12.25",
    "2025-12-25 10:30",
    "１２，８００円",
    "12,800円",
    "合計 1,234,567,890,123円",
    "〒123-4567",
    "123-4567",
    "MN-11223344",
    "会員番号 MN-11223344 / 注文番号 1234-5678-90",
    "4111 1111 1111 1112",  # not Luhn and no keyword: an order number as far as we know
    "お問い合わせは taro@example.com まで",
]


@pytest.mark.parametrize(("raw", "masked"), MASKED)
def test_more_card_and_my_number_formats_are_masked(raw: str, masked: str) -> None:
    assert mask_sensitive(raw) == masked


@pytest.mark.parametrize("text", KEPT)
def test_order_phone_date_price_postal_and_member_numbers_are_kept(text: str) -> None:
    assert mask_sensitive(text) == text


def test_table_is_large_enough_both_ways() -> None:
    assert len(MASKED) + len(KEPT) >= 30 and len(MASKED) >= 15 and len(KEPT) >= 15


@pytest.mark.parametrize("raw", [raw for raw, _ in MASKED] + KEPT)
def test_masking_twice_changes_nothing_more(raw: str) -> None:
    """The queue masks again what the packet builder masked: it must be idempotent."""
    once = mask_sensitive(raw)
    assert mask_sensitive(once) == once


@pytest.mark.parametrize(("raw", "masked"), MASKED[:14])
def test_no_masked_card_ever_shows_more_than_four_digits(raw: str, masked: str) -> None:
    card = "".join(ch for ch in masked.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
                   if ch.isdigit())
    assert len(card) <= 4


# --- optional masking of phone numbers and e-mail addresses ------------------------------

@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("電話は090-1234-5678です", "電話は***-****-5678です"),
        ("03-1234-5678", "**-****-5678"),
        ("０９０－１２３４－５６７８", "***－****－５６７８"),
        ("09012345678", "*******5678"),
        ("080 1234 5678", "*** **** 5678"),
        ("+81 90-1234-5678", "+** **-****-5678"),
        ("0120-123-456", "****-**3-456"),
    ],
)
def test_phone_numbers_are_masked_when_editors_turn_it_on(raw: str, masked: str) -> None:
    from bot.text.masking_settings import MaskingSettings

    assert mask_sensitive(raw, phone=True) == masked
    assert MaskingSettings(phone=True).mask(raw) == masked
    assert mask_sensitive(raw) == raw  # off by default


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("taro.yamada@example.co.jp に返信ください", "***@example.co.jp に返信ください"),
        ("メールはａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍです", "メールは***＠ｅｘａｍｐｌｅ．ｃｏｍです"),
        ("a+b_c-d@mail.example.com", "***@mail.example.com"),
    ],
)
def test_email_addresses_are_masked_when_editors_turn_it_on(raw: str, masked: str) -> None:
    assert mask_sensitive(raw, email=True) == masked
    assert mask_sensitive(raw) == raw


def test_phone_option_leaves_dates_prices_order_and_card_rules_alone() -> None:
    text = "注文番号 1234-5678-90、2025/12/25、12,800円、〒123-4567、カード 4111 1111 1111 1111"
    assert mask_sensitive(text, phone=True, email=True) == text.replace("4111 1111 1111 1111",
                                                                        "**** **** **** 1111")


def test_project_triage_file_turns_phone_and_email_masking_off() -> None:
    from bot.text.masking_settings import MaskingSettings, load_masking_settings

    assert load_masking_settings(PROJECT_ROOT / "knowledge" / "triage.yml") == MaskingSettings(False, False)
    text = (PROJECT_ROOT / "knowledge" / "triage.yml").read_text(encoding="utf-8")
    assert "masking:" in text and "phone: false" in text and "email: false" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("anger:\n  threshold: 0.6\n", (False, False)),  # no masking section: defaults
        ("anger:\n  threshold: 0.6\nmasking:\n  phone: true\n", (True, False)),
        ("anger:\n  threshold: 0.6\nmasking:\n  phone: false\n  email: true\n", (False, True)),
    ],
)
def test_masking_section_is_read(tmp_path: Path, body: str, expected: tuple[bool, bool]) -> None:
    from bot.text.masking_settings import load_masking_settings

    path = tmp_path / "triage.yml"
    path.write_text(body, encoding="utf-8")
    settings = load_masking_settings(path)
    assert (settings.phone, settings.email) == expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("masking:\n  phone: たぶん\n", "masking.phone"),
        ("masking:\n  mail: true\n", "masking.mail"),
        ("masking: true\n", "masking"),
    ],
)
def test_bad_masking_section_is_explained_in_japanese(tmp_path: Path, body: str, words: str) -> None:
    from bot.text.masking_settings import load_masking_settings

    path = tmp_path / "triage.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(KnowledgeError) as info:
        load_masking_settings(path)
    assert words in str(info.value) and "true" in str(info.value) and "対処" in str(info.value)


def test_knowledge_folder_without_triage_file_uses_the_project_one(tmp_path: Path) -> None:
    from bot.text.masking_settings import current_masking_settings

    bare = dataclasses.replace(get_settings(), knowledge_dir=tmp_path / "kb")
    (tmp_path / "kb").mkdir()
    assert bare.triage_file == PROJECT_ROOT / "knowledge" / "triage.yml"
    assert (current_masking_settings(bare).phone, current_masking_settings(bare).email) == (False, False)
    (tmp_path / "kb" / "triage.yml").write_text("masking:\n  phone: true\n  email: true\n", encoding="utf-8")
    own = dataclasses.replace(get_settings(), knowledge_dir=tmp_path / "kb")
    assert (current_masking_settings(own).phone, current_masking_settings(own).email) == (True, True)


def test_an_unreadable_masking_section_masks_rather_than_breaks_the_handoff(tmp_path: Path) -> None:
    from bot.text.masking_settings import current_masking_settings

    (tmp_path / "triage.yml").write_text("masking:\n  phone: たぶん\n  email: false\n", encoding="utf-8")
    settings = current_masking_settings(dataclasses.replace(get_settings(), knowledge_dir=tmp_path))
    assert (settings.phone, settings.email) == (True, False)  # the unreadable key errs on the private side
