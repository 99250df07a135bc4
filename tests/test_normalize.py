"""Table-driven tests of the shared Japanese normalisation."""

import pytest

from bot.text.normalize import Normalizer, fold, normalize
from bot.text.synonyms import load_normalizer
from bot.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ﾊﾟｽﾜｰﾄﾞ", "パスワード"),  # half-width katakana -> full width
        ("ＰＷを変更", "pwを変更"),  # full-width ASCII -> ASCII, lower case
        ("０１２０", "0120"),
        ("パスワ-ド", "パスワード"),  # hyphen typed for the long-vowel mark
        ("メール〜〜〜", "メール〜"),
        ("すごーーーい", "すごーい"),
        ("本当に！！！", "本当に!"),
        ("何で？？", "何で?"),
        ("  住所\n\t変更  ", "住所 変更"),
        ("住所\x00変更\u200b", "住所 変更"),  # control / zero-width characters
        ("<script>alert(1)</script>解約", "解約"),  # code blocks dropped
        ("<b>住所</b>変更", "住所 変更"),  # tags dropped, text kept
        ("", ""),
        ("   ", ""),
        ("😀", "😀"),
        ("（＾ω＾）", "(^ω^)"),
    ],
)
def test_fold(raw: str, expected: str) -> None:
    assert fold(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("メアドを変えたい", "メールアドレスを変えたい"),
        ("ﾒｱﾄﾞ変更", "メールアドレス変更"),
        ("PWを忘れた", "パスワードを忘れた"),
        ("クレカの変更", "クレジットカードの変更"),
        ("メールアドレスを変えたい", "メールアドレスを変えたい"),  # canonical form untouched
        ("問合せの状況", "問い合わせの状況"),
    ],
)
def test_editor_synonyms_apply(raw: str, expected: str) -> None:
    normalizer = load_normalizer(PROJECT_ROOT / "knowledge" / "synonyms.yml")
    assert normalize(raw, normalizer) == expected


def test_longest_synonym_wins() -> None:
    normalizer = Normalizer(synonyms={"メール": "mail", "メールアドレス": "address"})
    assert normalizer("メールアドレスとメール") == "addressとmail"


def test_ten_thousand_characters_do_not_break() -> None:
    text = "住所" * 5000
    assert len(fold(text)) == 10000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pasuwaado wasureta", "ぱすわあど わすれた"),
        ("simei henkou shitai", "しめい へんこう したい"),
        ("kongetsu no box saikou deshita", "こんげつ の box さいこう でした"),  # English word kept
        ("I want to change my address", "i want to change my address"),  # English left alone
        ("PWを忘れた", "パスワードを忘れた"),  # synonyms before romaji
    ],
)
def test_romaji_words_become_hiragana(raw: str, expected: str) -> None:
    normalizer = load_normalizer(PROJECT_ROOT / "knowledge" / "synonyms.yml")
    assert normalize(raw, normalizer) == expected
