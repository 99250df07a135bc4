"""Whether a message asks something (bot.text.asking), read from its form only."""

import pytest

from bot.text.asking import asks_something


@pytest.mark.parametrize("text", [
    "壊れたスマホや古いガラケー、どこに捨てればいいですか",
    "ソファを捨てたいんだけど、普通のゴミの日には出せないよね？",
    "土日はやっていますか。",
    "住民票ってコンビニでも取れるの",
    "子育ての窓口は市役所の何階でしょうか",
    "住所変更の方法を教えて",
    "手続きの期限を知りたいです",
    "昨夜父が亡くなりました。役所には何を出せばいいのでしょうか",  # the last sentence asks
    "ﾄﾞｺﾆｽﾃﾚﾊﾞｲｲﾃﾞｽｶ",  # half-width kana fold to the same form
])
def test_questions_and_requests_to_be_told_ask(text: str) -> None:
    assert asks_something(text)


@pytest.mark.parametrize("text", [
    "",
    "今日は天気がいいので散歩してきました",
    "電車が遅れて最悪",
    "ゲームのパスワードまた忘れた",
    "どこに行けばいいか迷ったけど、結局家で寝てた。",  # a question word in an earlier clause of a statement
    "ありがとうございました！",
])
def test_statements_do_not_ask(text: str) -> None:
    assert not asks_something(text)
