"""Whether a message asks something (「どこに捨てればいいですか」「土日はやっていますか」「教えて」).

The intent classifier learns what questions to *this* service look like; on another
knowledge base (a city's FAQ imported from a sheet) it reads many residents' questions as
everyday talk (「壊れたスマホ、どこに捨てればいいですか」). Chatter rarely asks anything of the
reader, so a message that asks is given the benefit of the doubt: the bot asks back with
the closest FAQ entries rather than saying it cannot help (:mod:`bot.triage.routing`,
``question_override``). Only the form is read here, never the topic.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

_QUESTION_MARK = re.compile(r"[?？]")
_SENTENCE_END = re.compile(r"(?<=[。!！?？\n])")
_TRAILING_MARKS = re.compile(r"[\s。、,.〜~ー…・!！\U0001F300-\U0001FAFF\u2600-\u27BF]+$")
# Sentence endings that ask: polite and plain question endings, and asking to be told.
_ASKING_ENDING = re.compile(r"(ますか|ですか|でしょうか|ませんか|のか|かな|かね|っけ|の|だろう|"
                            r"いいですか|いい|教えて|教えてください|教えて下さい|知りたい|知りたいです|"
                            r"ください|下さい)$")
# Question words (「どうすれば」「どこに」「何を」「いつまで」) in a sentence that does not end as a
# statement of what happened (「どこに行けばいいか迷ったけど、結局家で寝てた」).
_QUESTION_WORD = re.compile(r"(どうすれば|どうしたら|どうやって|どこに|どこで|どこへ|どこの|何を|なにを|何が|"
                            r"いつまで|いつから|いくら|誰に|だれに|どれくらい|どのくらい|どの|どんな)")
_STATEMENT_ENDING = re.compile(r"(た|だ|ました|でした|てる|ている|です|ます)$")


def asks_something(text: str) -> bool:
    """True when the last sentence of ``text`` is a question or a request to be told.

    Args:
        text: Raw customer text.
    """
    # Katakana folded to hiragana: ﾄﾞｺﾆｽﾃﾚﾊﾞｲｲﾃﾞｽｶ asks as much as どこに捨てればいいですか.
    folded = jaconv.kata2hira(unicodedata.normalize("NFKC", text or "")).strip()
    if not folded:
        return False
    # The last sentence (folded is stripped and not empty, so there is one).
    final = [s for s in _SENTENCE_END.split(folded) if s.strip()][-1]
    if _QUESTION_MARK.search(final):
        return True
    bare = _TRAILING_MARKS.sub("", final)
    if _ASKING_ENDING.search(bare):
        return True
    return bool(_QUESTION_WORD.search(bare)) and not _STATEMENT_ENDING.search(bare)
