"""Which language a customer message is written in: Japanese, or English / Chinese / Korean.

The chat works in Japanese. A message in another language must not be classified as if
it were Japanese (the classifier would pick a Japanese FAQ at random), so it is detected
first, by script and a small word list, with no model:

* Hangul syllables or letters → Korean.
* Han characters with no kana, plus a character or word that Japanese does not use
  (们, 吗, 这, 怎么, 請問, 我的 …) or a simplified character that Japanese text cannot hold
  (记, 码, 营: outside the Japanese character set, Shift_JIS/cp932) → Chinese. Japanese
  written in kanji alone (「住所変更」「髙橋」) stays Japanese.
* Only Latin letters and at least one common English word → English. Romaji Japanese
  (「juusho henkou shitai」, 「toiawase no henji mada desu ka」) and the few English words
  Japanese customers type in Japanese chats (「OK」「yes」「no」「thanks」) stay Japanese:
  the tokenizer turns romaji into kana.

Full-width letters (Ｈｅｌｌｏ) are folded with NFKC first.
"""

from __future__ import annotations

import re
import unicodedata

JAPANESE = "ja"
ENGLISH = "en"
CHINESE = "zh"
KOREAN = "ko"

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Characters common in Chinese (simplified or traditional) that Japanese does not use
# (時, 請, 問, 番号 are Japanese too: 「営業時間」「請求書」 must stay Japanese).
_CHINESE_ONLY_CHARS = set("们們吗嗎么麼这這还为说說谢对對个钱錢账賬让讓给该吧呢啊您时")
_CHINESE_WORDS = ("我的", "我想", "我要", "怎么", "怎麼", "什么", "什麼", "可以", "是否", "你好", "您好", "一下",
                  "帐户", "帳戶", "地址", "修改", "付款", "客服", "如何")
# Common English words; one is enough when the text is mostly Latin letters.
_ENGLISH_WORDS = frozenset("""
a an the i me my you your we our it is are was be been do does did can could would should will how what
when where why who which please help hello hi hey thanks thank there this that to of for in on with and or
not no yes want need change update cancel account address email password payment card plan subscription
order delivery bill invoice refund speak talk human agent person support service english japanese
problem issue question login log sign am have has get got why sorry excuse good morning afternoon evening
""".split())


# Romaji words that mark Japanese written in Latin letters (particles, endings, common verbs).
_ROMAJI_MARKERS = frozenset("""
desu masu deshita mashita shitai shimasu kudasai onegai onegaishimasu arigatou arigato gozaimasu nai nai desuka
wa ga wo ni de ka ne yo kara made mada hoshii henkou kaeru kaetai dekiru dekimasu dou doushite nan nani itsu
sumimasen gomen oshiete shiritai toiawase henji juusho denwa bangou meado pasuwado kaiyaku ryoukin shiharai
saiaku saikou sugoi dame ii yatte kure tte
""".split())
# English words Japanese customers use on their own in Japanese chats: left to the classifier.
_LOANWORDS_ALONE = frozenset({"ok", "okay", "yes", "no", "thanks", "thx", "sorry", "ng", "faq", "hi", "hello"})


def _outside_japanese_charset(ch: str) -> bool:
    """``ch`` cannot be written in Japanese text (not in cp932: simplified 记, 码, 营)."""
    try:
        ch.encode("cp932")
    except UnicodeEncodeError:
        return True
    return False


def _chinese_marks(folded: str) -> bool:
    """Kana-less Han text holds a character or word of Chinese only (module docstring)."""
    return (any(ch in _CHINESE_ONLY_CHARS for ch in folded) or any(w in folded for w in _CHINESE_WORDS)
            or any(_outside_japanese_charset(ch) for ch in _HAN.findall(folded)))


def detect_language(text: str) -> str:
    """The language of ``text``: ``ja`` (also for empty or undecidable text), ``en``, ``zh`` or ``ko``.

    Args:
        text: Raw customer text.

    Returns:
        One of :data:`JAPANESE`, :data:`ENGLISH`, :data:`CHINESE`, :data:`KOREAN`.
    """
    folded = unicodedata.normalize("NFKC", text or "").lower()
    hangul = len(_HANGUL.findall(folded))
    kana = len(_KANA.findall(folded))
    han = len(_HAN.findall(folded))
    if hangul and hangul >= kana:
        return KOREAN
    if han and not kana:
        return CHINESE if _chinese_marks(folded) else JAPANESE
    if kana or han:
        return JAPANESE
    words = _LATIN_WORD.findall(folded)
    if not words or any(w in _ROMAJI_MARKERS for w in words):
        return JAPANESE
    if len(words) == 1 and words[0] in _LOANWORDS_ALONE:
        return JAPANESE
    if any(w in _ENGLISH_WORDS for w in words):
        return ENGLISH
    return JAPANESE
