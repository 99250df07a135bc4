"""Whether a customer message stops mid-sentence (「請求のことなんですけど」「マイページが…」).

In chat, customers often send the subject first and wait for a reply before saying what
happened. Such a message has not yet said what the customer wants, so the bot asks back
instead of acting on a guess (:mod:`bot.triage.routing`, ``unfinished_clarify``). A message
with an exclamation or question mark has said what it means and never counts.
"""

from __future__ import annotations

import re
import unicodedata

# An ellipsis at the end: the customer trails off.
_ELLIPSIS = re.compile(r"(…|\.\.\.|・・・|‥)$")
# Endings that join to a sentence that never comes: conjunctive particles (けど, が, ので),
# a topic with nothing said about it (〜のことで, 〜について), and hedges (〜ような, 〜かも).
_OPEN_ENDING = re.compile(r"(けど|けれど|けども|けんど|んですが|のですが|なんですが|ですが|が|ので|ことで|件で|"
                          r"について|ような|みたいで|かも)$")
_TRAILING_MARKS = re.compile(r"[\s。、,.〜~ー\U0001F300-\U0001FAFF\u2600-\u27BF]+$")
_SAID_WHAT_IT_MEANS = re.compile(r"[!?！？]")


def is_unfinished(text: str) -> bool:
    """True when ``text`` ends mid-sentence (see module docstring).

    Args:
        text: Raw customer text.
    """
    folded = unicodedata.normalize("NFKC", text or "").strip()
    if not folded or _SAID_WHAT_IT_MEANS.search(folded):
        return False
    if _ELLIPSIS.search(folded):
        return True
    return bool(_OPEN_ENDING.search(_TRAILING_MARKS.sub("", folded)))
