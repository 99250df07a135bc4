"""Every sentence the code shows to customers and agents, in one place.

Why one Python module (and not a YAML file in ``knowledge/``): these texts are part of the
program's behaviour — they carry ``{placeholders}`` the code fills, some are chosen by reason
or route, and a wrong edit must fail a test rather than reach a customer at run time. Editors
review them here (the constants read as a list); the facts in them (phone, hours, chat name)
come from the fact sheet ``knowledge/facts.yml`` and are filled in when they are used, so a
new phone number is changed in one place. ``tests/test_style.py`` checks every text here, the
domain responses and the browser scripts' texts against ``knowledge/style.yml``.

Where the texts are used:

- bot replies (``bot/dialogue/replies.py``, actions): :data:`CLARIFY_TEXT` … :data:`HANDOFF_TEXT`;
- Rasa's small-talk responses: :data:`DOMAIN_RESPONSES` (``domain.yml`` must hold exactly these;
  ``tests/test_style.py`` compares them);
- the widget's texts: :data:`WIDGET_TEXT`, written into ``bot/server/static/widget/widget.js``
  between the ``GENERATED TEXT`` markers by ``bot kb build`` (the widget is one script on a
  customer's site and must work when the server is down, so it cannot fetch them);
- error frames and messages of the bot server: :data:`CHAT_ERRORS`, :data:`GATEWAY_TEXT`;
- what agents see of the bot's decision: :func:`decision_label`.

Rules (``knowledge/style.yml``): お客さま, 担当者, 受付時間外, 申し訳ございません, かしこまりました,
AIチャット (never ボット to customers). Every error a customer can see apologises, says what
happened in plain words and what to do next — with the phone number and hours of the fact sheet
(:func:`fallback_contact`). No text is built from internal ids or English status names.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from bot.knowledge.facts import Facts, facts_path, load_facts

WEEKDAYS_JA = "月火水木金土日"


@functools.lru_cache(maxsize=4)
def _facts(directory: str, stamp: int) -> Facts:
    return load_facts(Path(directory))


def facts(directory: Path | None = None) -> Facts:
    """The fact sheet of ``directory`` (default: the configured knowledge folder).

    Read again when the file changes (its modification time), like the FAQ answers, so an edited
    phone number reaches the handoff and error texts without a restart.
    """
    if directory is None:
        from bot.settings import get_settings

        directory = get_settings().knowledge_dir
    path = facts_path(directory)
    try:
        stamp = path.stat().st_mtime_ns if path else 0
    except OSError:
        stamp = 0
    return _facts(str(directory), stamp)


def fact(name: str, directory: Path | None = None, default: str = "") -> str:
    """One fact's display text (``phone``, ``hours.staffed``), or ``default``."""
    return facts(directory).values.get(name, default)


def fallback_contact(directory: Path | None = None) -> str:
    """「お急ぎの場合は、お電話（0120-000-123、平日 9:00〜18:00）でもお問い合わせいただけます。」"""
    phone, hours = fact("phone", directory), fact("hours.staffed", directory)
    if not phone:
        return "お急ぎの場合は、お問い合わせフォームからご連絡ください。"
    return f"お急ぎの場合は、お電話（{phone}、{hours}）でもお問い合わせいただけます。" if hours else \
        f"お急ぎの場合は、お電話（{phone}）でもお問い合わせいただけます。"


def format_time(when: datetime) -> str:
    """``11月24日（火）9:00``: the style of the FAQ answers (no leading zero)."""
    return f"{when.month}月{when.day}日（{WEEKDAYS_JA[when.weekday()]}）{when.hour}:{when.minute:02d}"


# ---------------------------------------------------------------------------
# Bot replies (bot/dialogue/replies.py)
# ---------------------------------------------------------------------------

TRUNCATION_NOTE = "（メッセージが長かったため、最初の{limit}文字までを読んでお答えしています。）"
CLARIFY_TEXT = "お問い合わせの内容は、次のどれに近いでしょうか。当てはまるものを選んでください。"
NO_WORDS_TEXT = ("メッセージが空か、記号だけのようです。お手数ですが、ご質問を文章で入力してください。"
                 "よくあるご質問はこちらです。")
HUMAN_BUTTON_TITLE = "担当者と話したい"
HUMAN_AFTER_MISS_BUTTON_TITLE = "担当者と話す"
# Greeting and 「AIですか」: who the chat is comes from the knowledge folder's facts.yml
# (bot.knowledge.loader.assistant_name), the topics as buttons from its FAQ entries.
GREET_TEXT = "こんにちは。{assistant}です。ご質問をお書きください。よくあるご質問はこちらです。"
IAMABOT_TEXT = "私は{assistant}です。担当者との会話をご希望の場合は「担当者と話したい」とお書きください。"
PREAMBLE_TEXT = "はい、どうぞ。ご質問をお書きください。よくあるご質問はこちらです。"
# Out of scope: what the chat covers is shown as the knowledge base's main topics (buttons),
# so a city that imports its own FAQ sheet is never told about another service's topics.
OUT_OF_SCOPE_TEXT = ("申し訳ございません。そのご質問には、このAIチャットではお答えできかねます。"
                     "よくあるご質問はこちらです。担当者へのご相談をご希望の場合は「担当者と話したい」を押してください。")
OFFER_HUMAN_TEXT = ("お役に立てず申し訳ございません。担当者がご相談をお受けします。"
                    "ご希望でしたら「担当者と話す」を押してください。別のご質問もお書きいただけます。")
OFFER_HUMAN_OFFLINE_TEXT = ("お役に立てず申し訳ございません。ただいま担当者の受付時間外です。"
                            "「担当者と話す」を押してフォームにご連絡先をご入力いただければ、"
                            "受付時間内に担当者からご連絡いたします。")
NOT_HELPFUL_TEXT = ("お役に立てず申し訳ございません。次のご案内が近いかもしれません。"
                    "解決しない場合は「担当者と話したい」を押してください。")
# Before the answer to a customer who is upset or reports a problem (an angry question the
# FAQ answers outright, 「メールが届かない」): the answer alone would read as cold.
UPSET_ANSWER_OPENING = "ご不便をおかけしており、申し訳ございません。"
# One line per link under an answer; the URL is written only here, never again in the answer.
LINK_LINE = "▶ {title}はこちら: {url}"
# Non-Japanese messages: one sentence in the customer's language, then the same in Japanese.
LANGUAGE_TEXT = {
    "en": "Sorry, this chat can only answer questions in Japanese. For help in English, please use "
          "our contact page, or press the button to talk to a person.",
    "zh": "抱歉，本聊天仅支持日语。如需帮助，请访问我们的联系页面，或点击按钮与工作人员联系。",
    "ko": "죄송합니다. 이 채팅은 일본어로만 답변할 수 있습니다. 문의 페이지를 이용하시거나 버튼을 눌러 담당자와 상담해 주세요.",
}
LANGUAGE_TEXT_JA = ("申し訳ございません。このチャットは日本語でのご質問にのみお答えできます。"
                    "お問い合わせページをご利用いただくか、ボタンから担当者にご相談ください。")
# During staffed hours: a person takes over now.
HANDOFF_TEXT = {
    "human_request": "かしこまりました。担当者におつなぎします。これまでのやり取りは担当者に引き継ぎますので、"
                     "同じ内容を繰り返していただく必要はありません。",
    "complaint": "ご不便とご不快な思いをおかけし、誠に申し訳ございません。担当者が内容を確認し、対応いたします。"
                 "これまでのやり取りはそのまま引き継ぎます。",
    "anger": "ご不快な思いをおかけし、誠に申し訳ございません。担当者が直接対応いたしますので、少々お待ちください。"
             "これまでのやり取りはそのまま引き継ぎます。",
    "unresolved": "お役に立てず申し訳ございません。担当者におつなぎします。これまでのやり取りは担当者に引き継ぎます。",
}
# Outside staffed hours: no "one moment please" — say that nobody is there now, ask for contact
# details through the form the widget shows, and only then promise a call-back.
OFFLINE_HANDOFF_OPENING = {
    "human_request": "かしこまりました。",
    "complaint": "ご不便とご不快な思いをおかけし、誠に申し訳ございません。",
    "anger": "ご不快な思いをおかけし、誠に申し訳ございません。",
    "unresolved": "お役に立てず申し訳ございません。",
}
OFFLINE_HANDOFF_TEXT = ("{opening}ただいま担当者の受付時間外（受付時間: {hours}）のため、すぐにはおつなぎできません。"
                        "このあと表示されるフォームにご連絡先（メールアドレスか電話番号）をご入力いただければ、"
                        "{next_opening}以降に担当者から順番にご連絡いたします。これまでのやり取りは担当者に引き継ぎます。")
NEXT_OPENING_UNKNOWN = "受付再開"

# ---------------------------------------------------------------------------
# Rasa responses (domain.yml must hold exactly these texts)
# ---------------------------------------------------------------------------

DOMAIN_RESPONSES = {
    "utter_goodbye": "ご利用ありがとうございました。またいつでもお問い合わせください。",
    "utter_thanks": "お役に立てて何よりです。ほかにご不明な点があれば、お気軽にお書きください。",
    "utter_affirm": "かしこまりました。ご質問の内容をお書きください。",
    "utter_deny": "かしこまりました。ほかにお手伝いできることがあれば、ご質問の内容をお書きください。",
    "utter_restart": "会話を最初からやり直します。ご質問をどうぞ。",
    "utter_back": "ひとつ前の状態に戻しました。ご質問をどうぞ。",
    "utter_default": "申し訳ございません。ご質問の内容をうまく読み取れませんでした。"
                     "「住所を変えたい」「料金を知りたい」のように、短い文でもう一度お書きいただくか、"
                     "担当者へのご相談をご希望の場合は「担当者と話したい」とお書きください。",
}

# ---------------------------------------------------------------------------
# Bot server: error frames of the chat (bot/server/chat_api.py) and the gateway
# ---------------------------------------------------------------------------

CHAT_ERRORS = {
    "bad_token": "申し訳ございません。この会話は期限が切れたため、続けられません。"
                 "画面を再読み込みして、新しい会話を始めてください。",
    "too_many_sessions": "申し訳ございません。短い時間に新しい会話が続けて始められたため、受付を一時止めています。"
                         "{wait}にもう一度お試しください。{contact}",
    "too_many_sockets": "申し訳ございません。このチャットを開いている画面が多すぎます。"
                        "ほかのタブやウィンドウを閉じてから、もう一度お試しください。",
    "bad_frame": "申し訳ございません。メッセージを受け取れませんでした。画面を再読み込みして、もう一度お送りください。",
    "not_text": "申し訳ございません。文字以外のデータは受け取れません。ご質問は文章でお送りください。",
    "too_long": "申し訳ございません。メッセージが長すぎるため受け取れませんでした（{limit:,} 文字まで）。"
                "何回かに分けてお送りください。",
    # The bot server cannot reach its database (bot/server/outage.py): the widget keeps the message
    # and sends it again once it can reconnect.
    "unavailable": "申し訳ございません。ただいまシステムの不具合で、メッセージをお受けできません。"
                   "復旧しだい自動でつなぎ直し、お書きになったメッセージをお送りします。このままお待ちください。{contact}",
}
# The console's answer while the bot server cannot reach its database (bot/server/outage.py).
AGENT_UNAVAILABLE = "データベースに接続できないため、この操作はできませんでした。しばらくしてからもう一度お試しください。"
# The widget on a page whose origin is not allowed (bot/server/app.py).
ORIGIN_REFUSED = ("申し訳ございません。このページからはチャットをご利用いただけません（チャットを置くことが許可されていない"
                  "ページです）。お手数ですが、公式サイトのお問い合わせページからご連絡ください。")
# The gateway's texts (bot/server/gateway_base.py's TEXT = gateway_text(MAX_MESSAGE_CHARS)).
GATEWAY_TEXT = {
    "empty": "メッセージが空のため、お送りできませんでした。ご質問をお書きください。",
    "too_long": "申し訳ございません。メッセージが長すぎるため受け取れませんでした（{limit:,} 文字まで）。"
                "何回かに分けてお送りください。",
    "stale_button": "申し訳ございません。このボタンは使えなくなりました。ご質問をお書きください。",
    "bot_down": "申し訳ございません。ただいまAIチャットが応答できません。お送りいただいたメッセージはお預かりしました。"
                "数分たってから、もう一度お送りください。{contact}",
    # Rasa took the message but did not answer in time (RASA_TIMEOUT_SECONDS): a handoff it asked
    # for may have been filed or not. If its ticket arrives, "handoff_after_timeout" follows.
    "bot_slow": "申し訳ございません。ただいまAIチャットの応答が遅れており、お送りいただいたメッセージを受け付けられたか"
                "確認できませんでした。担当者へのおつなぎをご希望の場合、受け付けられていない可能性があります。"
                "受け付けられた場合は、この画面でお知らせします。数分たってもお知らせがない場合は、"
                "もう一度お送りください。{contact}",
    "handoff_after_timeout": "先ほどのご依頼を受け付け、担当者へおつなぎしています。"
                             "担当者が参加するまで、このままお待ちください。",
    "handoff_after_timeout_offline": "先ほどのご依頼を担当者へのお問い合わせとして受け付けました。ただいま受付時間外のため、"
                                     "担当者が受付時間内に対応いたします。",
    "pending": "担当者へのおつなぎを準備しています。このメッセージも担当者にお伝えします。",
    "agent_joined": "担当の{name}がチャットに参加しました。",
    "resolved": "担当者との会話を終了しました。ご利用ありがとうございました。引き続きAIチャットがご質問にお答えします。",
    "cancelled": "担当者へのおつなぎを取り消しました。引き続きAIチャットがご質問にお答えします。",
    "no_open_ticket": "担当者へのおつなぎは、すでに終わっているか、取り消されています。ご質問はこのままお書きください。",
    "no_offline_ticket": "申し訳ございません。ご連絡先の受付が見つかりませんでした。"
                         "もう一度「担当者と話したい」とお書きください。{contact}",
    "contact_after_resolved": "申し訳ございません。担当者がこのお問い合わせの対応をすでに終えていました。"
                              "ご連絡先はお預かりしましたので、次に担当者へおつなぎするときにお伝えします。"
                              "ご用件がお済みでない場合は、もう一度「担当者と話したい」とお書きください。",
    "slow_down": "申し訳ございません。メッセージが続けて送られたため、受付を一時止めています。"
                 "{seconds} 秒ほどたってから、もう一度お送りください。",
    "too_many_tickets": "申し訳ございません。担当者へのお問い合わせの受付が上限に達しているため、"
                        "新しいお問い合わせをお受けできませんでした。担当者からのご連絡をお待ちいただくか、"
                        "しばらくしてからもう一度お試しください。引き続きAIチャットがご質問にお答えします。{contact}",
    "agent_changed": "担当者が交代します。ここからは{name}が担当いたします。",
    # The waiting banner's note when no available agent takes the ticket's category (no figures).
    "no_agent_for_category": "ただいま、このご用件を担当できる者がおりません。そのため、順番と待ち時間の目安は"
                             "お知らせできません。担当できる者が戻りしだいおつなぎしますので、このままお待ちください。"
                             "{contact}",
    # Escalation and transfers (bot/server/gateway_escalation.py): one line per step.
    "requeued": "担当者が交代します。次の担当者におつなぎしますので、このままお待ちください。",
    "supervisor_joined": "責任者が対応します。ここからは{name}が担当いたします。",
    # Agent-facing (console transcript).
    "ended_with_agent": "お客さまが会話を終了しました。",
    "not_your_ticket": "このお問い合わせは{name}さんが対応中です。解決するには、先に「対応を引き継ぐ」を押してください。",
    "took_over": "{new}さんが{old}さんから対応を引き継ぎました。",
}
class _LazyTexts(Mapping[str, str]):
    """A text table whose facts (phone, hours) are read on first use, not at import."""

    def __init__(self, build: Callable[[], dict[str, str]]) -> None:
        self._build = build
        self._texts: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = self._build()
        return self._texts

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def gateway_text(max_message_chars: int) -> Mapping[str, str]:
    """:data:`GATEWAY_TEXT` with the limit and the fallback contact filled in (``{name}``,
    ``{seconds}``, ``{new}``, ``{old}`` stay for the gateway); facts are read on first use."""
    def build() -> dict[str, str]:
        contact = fallback_contact()
        return {key: text.replace("{limit:,}", f"{max_message_chars:,}").replace("{contact}", contact)
                for key, text in GATEWAY_TEXT.items()}

    return _LazyTexts(build)


# Customer-visible errors of the queue and chat log (bot/store/queue.py, bot/store/chat_log.py).
STORE_CUSTOMER_TEXT = {
    "feedback_refused": "申し訳ございません。この回答への評価はお受けできませんでした。"
                        "ご意見は、このままチャットにお書きください。",
    "resolved": "このお問い合わせは対応が終わっています。ご質問はこのままお書きください。",
    "entry_limit": "申し訳ございません。このお問い合わせでお送りいただけるメッセージの上限（{limit:,} 件）に達しました。"
                   "担当者からのご連絡をお待ちください。{contact}",
}
# The satisfaction survey after a chat (bot/store/csat.py, gateway); the survey's own texts
# (question, rating labels, buttons) are the editors' knowledge/csat.yml (bot/knowledge/csat.py).
CSAT_TEXT = {
    "bad_rating": "申し訳ございません。評価は 1〜5 の数字からお選びください。",
    "bad_comment": "申し訳ございません。ご意見は文章でお書きください。",
    "comment_too_long": "申し訳ございません。ご意見が長すぎるため受け取れませんでした（{limit:,} 文字まで、"
                        "いまは {length:,} 文字）。短くしてから、もう一度お送りください。",
    "no_ticket": "申し訳ございません。評価していただくお問い合わせが見つかりませんでした。画面を再読み込みしてください。",
    "not_resolved": "申し訳ございません。このお問い合わせは担当者の対応がまだ終わっていないため、評価をお受けできません。",
    "already_rated": "このお問い合わせには、すでにご回答いただいています。ありがとうございました。",
}
# The transcript by e-mail (bot/mail/, gateway): the mail itself and the customer's messages.
TRANSCRIPT_TEXT = {
    "subject": "【{service}】チャットでのお問い合わせの記録",
    "intro": "{customer}\n\n{service}のチャットでのお問い合わせの記録をお送りします。\n"
             "このメールは送信専用です。ご返信いただいてもお答えできませんので、ご了承ください。",
    "header": "お問い合わせの記録（{start}〜{end}）",
    "sender_customer": "あなた",
    "sender_bot": "AIチャット",
    "sender_agent": "担当者（{name}）",
    "sender_agent_unnamed": "担当者",
    "masked_note": "※ カード番号などの大切な番号は、一部を「*」に置き換えています。",
    "footer": "ご不明な点は、チャットでお気軽にお問い合わせください。{contact}",
    "queued": "会話の記録を {address} にお送りします。届くまで数分かかることがあります。",
    "sent": "会話の記録を {address} にお送りしました。",
    "failed": "申し訳ございません。会話の記録をメールでお送りできませんでした（{address}）。"
              "メールアドレスをお確かめのうえ、もう一度お試しください。{contact}",
    "bad_address": "メールアドレスの形式が正しくありません（例: taro@example.jp）。",
    "no_ticket": "申し訳ございません。お送りできる会話の記録が見つかりませんでした。画面を再読み込みしてください。",
    "off": "申し訳ございません。ただいま会話の記録をメールでお送りできません。",
    "too_many": "申し訳ございません。このお問い合わせの記録は、すでに {limit} 回お送りしています。"
                "届いていない場合は、迷惑メールのフォルダもご確認ください。",
}
# Admins' page of mails that could not be sent (配信の失敗): bot/server/failures_api.py.
MAIL_ADMIN_TEXT = {
    "unknown_mail": "メール {id} は見つかりません。一覧を再読み込みしてください。",
    "not_failed": "メール {id} は送信できなかったものではありません（送信済みか、再送の手配済みです）。",
    "trigger_request": "お客さまの依頼（会話の記録）",
    "trigger_auto": "解決時の自動送信（会話の記録）",
    "trigger_forward": "部署への引き継ぎ",
}
# Agent-facing errors of the queue (console): お問い合わせ, status in Japanese, never English names.
# Keys are Ticket.status values (bot/store/models.py).
TICKET_STATUS_JA = {"waiting": "対応待ち", "claimed": "対応中", "resolved": "解決済み"}
STORE_AGENT_TEXT = {
    "not_found": "お問い合わせ {ticket_id} はありません。画面を更新してください。",
    "no_such_entry": "お問い合わせ {ticket_id} の会話履歴に、指定された位置（{before}）はありません。画面を更新してください。",
    "changed_meanwhile": "お問い合わせ {ticket_id} は、ほかの操作で更新されました。画面を更新してください。",
    "claimed_by_other": "お問い合わせ {ticket_id} は別の担当者（{name}）が対応中です。解決するには、先に対応を引き継いでください。",
    "already_yours": "お問い合わせ {ticket_id} は、すでにあなたが対応中です。",
    "not_yours": "このお問い合わせはあなたが対応中ではありません。先に「対応する」を押してください。",
    "unknown_agent": "担当者 {username} は登録されていません。`bot agent list` で確認してください。",
    "not_waiting": "お問い合わせ {ticket_id} は対応待ちではありません（いまの状態: {status_ja}）。画面を更新してください。",
    "not_claimed": "お問い合わせ {ticket_id} は対応中ではありません（いまの状態: {status_ja}）。"
                   "対応待ちなら「対応する」を押してください。",
    "already_resolved": "お問い合わせ {ticket_id} はすでに解決済みです。",
}

# The agent desk (bot/store/desk.py, bot/server/desk_api.py, `bot agent`): roles, caps, status,
# skills, offers. Agent-facing.
DESK_TEXT = {
    "full": "同時対応数の上限（{cap} 件）に達しているため、お問い合わせ {ticket_id} を担当できません。"
            "対応中のお問い合わせを解決してから、もう一度お試しください。",
    "bad_max_chats": "同時対応数は {low} から {high} までの整数で指定してください（指定された値: {value}）。",
    "bad_role": "役割は agent（担当者）、supervisor（責任者）、admin（管理者）のいずれかで指定してください"
                "（指定された値: {value}）。",
    "bad_status": "状態は available（対応可能）、away（離席）、offline（オフライン）のいずれかで指定してください"
                  "（指定された値: {value}）。",
    "bad_skills": "スキルはカテゴリ名の一覧で指定してください。",
    "unknown_skills": "スキル「{skills}」は knowledge/ のカテゴリにありません。使えるカテゴリ: {known}",
    "last_admin": "管理者が1人もいなくなるため、{username} の役割を変更できません。先にほかの担当者を管理者にしてください。",
    "admin_only": "この操作は管理者だけが行えます。管理者に依頼してください。",
    "not_offered": "お問い合わせ {ticket_id} は、いまあなたに割り当てられていません。画面を更新してください。",
    "nothing_to_change": "変更する項目（役割、同時対応数、状態、スキル）を指定してください。",
}

# Escalation, transfers, whispers and the supervisor view (bot/store/escalation.py,
# bot/server/escalation_api.py, the console). Agent-facing; the customer's lines are GATEWAY_TEXT's.
ESCALATION_TEXT = {
    "supervisor_only": "この操作と画面は責任者（supervisor）と管理者だけが使えます。責任者に依頼してください。",
    "no_target": "転送先を指定してください（担当者を選ぶか、「お問い合わせ一覧に戻す」を選んでください）。",
    "two_targets": "転送先は担当者かお問い合わせ一覧のどちらか一つだけを指定してください。",
    "note_required": "転送の理由（内部メモ）を入力してください。お客さまには表示されません。",
    "text_required": "{what}の内容を入力してください。",
    "too_long": "{what}は {limit:,} 文字以内で入力してください（いまは {length:,} 文字）。入力した内容はそのまま残っています。",
    "not_text": "{what}は文字列で指定してください。",
    "unknown_agent": "転送先の担当者「{username}」は登録されていません。一覧から選び直してください。",
    "to_self": "{name}さんはすでにこのお問い合わせを対応中です。ほかの担当者を選んでください。",
    "unavailable": "{name}さんはいま「{status}」のため、転送できません。「対応可能」の担当者を選ぶか、"
                   "お問い合わせ一覧に戻してください。",
    "full": "{name}さんは同時対応数の上限（{cap} 件）に達しているため、転送できません。"
            "ほかの担当者を選ぶか、お問い合わせ一覧に戻してください。",
    "unknown_category": "カテゴリ「{category}」は knowledge/ のカテゴリにありません。使えるカテゴリ: {known}",
    "not_owner": "お問い合わせ {ticket_id} はあなたが対応中ではないため、{action}できません（いまの状態: {status_ja}）。"
                 "画面を更新してください。",
    "resolved": "お問い合わせ {ticket_id} はすでに解決済みのため、{action}できません。",
    "offline": "お問い合わせ {ticket_id} は受付時間外の連絡先の受付のため、{action}できません。",
    "already_escalated": "お問い合わせ {ticket_id} はすでに責任者にエスカレーションされています。責任者の参加をお待ちください。",
    "already_joined": "お問い合わせ {ticket_id} には、すでに責任者の{name}さんが参加しています。ほかの責任者は参加できません。",
    "already_yours": "お問い合わせ {ticket_id} は、すでにあなたが対応中です。",
    "no_agent": "お問い合わせ {ticket_id} はいま担当者が対応中ではないため、ささやきを送れません"
                "（ささやきは対応中の担当者だけに届きます）。",
    "whisper_self": "お問い合わせ {ticket_id} はあなたが対応中です。ささやきではなく内部メモを使ってください。",
    "actions": {"transfer": "転送", "escalate": "エスカレーション", "join": "参加", "whisper": "ささやきを送信"},
    "fields": {"note": "内部メモ", "whisper": "ささやき"},
    # Lines of the console's transcript (system entries; the customer never sees them).
    "record_transferred": "{old}さんが{new}さんに転送しました。",
    "record_requeued": "{old}さんがお問い合わせ一覧に戻しました（カテゴリ: {category}）。",
    "record_escalated": "{name}さんが責任者にエスカレーションしました。",
    "record_auto_escalated": "返信のないまま {wait} たったため、自動で責任者にエスカレーションしました。",
    "auto_note": "苦情・怒りの表現のお問い合わせが、対応待ちまたは返信待ちのまま {wait} たちました。",
    "record_joined": "責任者の{name}さんが参加しました。",
    "no_category": "指定なし",
    "system": "システム",
    # The history of a ticket (console's 「対応の記録」).
    "kinds": {"claimed": "対応開始", "taken_over": "引き継ぎ", "transferred": "転送", "requeued": "一覧に戻す",
              "escalated": "エスカレーション", "auto_escalated": "自動エスカレーション", "joined": "責任者が参加",
              "whisper": "ささやき", "resolved": "解決", "cancelled": "取り消し（お客さま）",
              "forwarded": "部署に引き継ぎ", "forward_failed": "部署への送信の失敗"},
    "states": {"requested": "責任者待ち", "joined": "責任者が対応中"},
}

# Department hand-off without chat (#15 item 4; bot/store/forwarding.py, knowledge/departments.yml).
FORWARD_TEXT = {
    # The customer's one line (widget, LINE, history): the department's promise, never the note.
    "customer": "このお問い合わせは{department}に引き継ぎました。{promise}引き続きAIチャットがご質問にお答えします。",
    # Refusals (409 / 404 / 422), for the agent.
    "unknown_department": "部署「{department}」は knowledge/departments.yml にありません。一覧から選び直してください。",
    "no_department": "引き継ぐ部署を選んでください。",
    "no_delivery": "{department}には送り先（メールアドレスか Webhook の受信先）が設定されていないため、引き継げません。"
                   "編集者に knowledge/departments.yml への追加を依頼してください。入力した内部メモはそのまま残っています。",
    "no_mail_server": "{department}の送り先はメールだけですが、このサーバーにはメールサーバー（BOT_SMTP_HOST）が"
                      "設定されていないため、引き継げません。管理者に依頼してください。入力した内部メモはそのまま残っています。",
    "no_receiver": "{department}の Webhook の受信先「{webhook}」が BOT_WEBHOOKS_FILE にないため、引き継げません。"
                   "管理者に依頼してください。入力した内部メモはそのまま残っています。",
    "note_required": "部署への引き継ぎの内容（内部メモ）を入力してください。部署に届き、お客さまには表示されません。",
    "action": "部署への引き継ぎ",
    # The console's transcript line (a system entry; the customer never sees it).
    "record": "{name}さんが{department}に引き継ぎました（{channels}）。",
    # ... when a supervisor or admin forwards another agent's chat.
    "record_for": "{name}さんが{agent}さんの対応中のチャットを{department}に引き継ぎました（{channels}）。",
    "channel_mail": "メール",
    "channel_webhook": "Webhook",
    "channel_separator": "・",
    # The history's note when a delivery was given up.
    "failed_mail": "{department}へのメール（{address}）を送れませんでした（{attempts} 回試しました: {error}）。"
                   "部署に直接連絡してください。",
    "failed_webhook": "{department}への Webhook（受信先 {webhook}）を送れませんでした（{error}）。"
                      "管理者が再送できます（配信できなかった Webhook の一覧）。",
    # The mail to the department (plain text, Japanese subject).
    "mail_subject": "【部署への引き継ぎ】お問い合わせ {ticket_id}（{department}）",
    "mail_intro": "{department} ご担当者さま\n\n{service}のチャットのお問い合わせを、担当者の{agent}が{department}に"
                  "引き継ぎました。お客さまへのご連絡をお願いします。",
    "mail_note": "■ 担当者からの引き継ぎ内容（内部メモ。お客さまには表示されていません）",
    "mail_promise": "■ お客さまにお伝えしたこと",
    "mail_customer": "■ お客さま",
    "mail_ticket": "■ お問い合わせ",
    "mail_transcript": "■ 会話の記録",
    "mail_footer": "このメールは{service}のサポートシステムから自動で送っています。"
                   "カード番号・マイナンバーなどは伏せ字にしています。",
    "customer_fields": {"name": "お名前", "email": "メール", "phone": "電話番号", "line_display_name": "LINE の表示名"},
    "no_customer_details": "（連絡先の入力はありません）",
}

# ---------------------------------------------------------------------------
# The chat widget (bot/server/static/widget/widget.js, block written by `bot kb build`)
# ---------------------------------------------------------------------------

WIDGET_TEXT = {
    "defaultTitle": "サポートチャット",
    "openChat": "チャットを開く",
    "closeChat": "チャットを閉じる",
    "unread": "（未読 {n} 件）",
    "log": "チャットの履歴",
    "inputLabel": "メッセージ",
    "placeholder": "メッセージを入力",
    "send": "送信",
    "sendLabel": "メッセージを送信",
    "connecting": "接続しています…",
    "reconnecting": "接続が切れました。再接続しています…",
    "unavailable": "申し訳ございません。ただいまチャットに接続できません。しばらくしてから、もう一度お試しください。{contact}",
    "notConnected": "申し訳ございません。接続が切れているため、お送りできませんでした。接続が回復してから、もう一度お試しください。",
    "queued": "送信待ち",
    "sending": "送信中…",
    "failed": "送信できませんでした",
    "retry": "再送信",
    "discard": "取り消す",
    "typing": "入力中",
    "typingLabel": "入力中…",
    "you": "あなた",
    "bot": "AIチャット",
    "agentFallback": "担当者",
    "system": "お知らせ",
    "agentLabel": "担当: {name}",
    "quickReplies": "選択肢",
    "helpfulQ": "役に立ちましたか？",
    "yes": "はい",
    "no": "いいえ",
    "helpfulThanks": "ご回答ありがとうございます。",
    "showMore": "続きを読む",
    "showLess": "閉じる",
    "waiting": "担当者におつなぎしています",
    "waitingPosition": "順番: {pos}番目",
    "waitingEstimate": "目安: 約{min}分",
    "agentNamed": "担当者（{name}）が対応しています",
    "agentUnnamed": "担当者が対応しています",
    "cancel": "待つのをやめてAIチャットに戻る",
    "tooLong": "メッセージは{max}文字以内で入力してください。",
    "genericError": "申し訳ございません。問題が起きたため、お送りいただいた内容を処理できませんでした。"
                    "もう一度お試しください。{contact}",
    "contactTitle": "ご連絡先の入力",
    "contactIntro": "ただいま担当者の受付時間外（受付時間: {hours}）のため、すぐには対応できません。"
                    "ご連絡先をお知らせいただければ、受付時間内に担当者からご連絡いたします。",
    "nextOpening": "次の受付開始: {s}",
    "name": "お名前",
    "email": "メールアドレス",
    "phone": "電話番号",
    "note": "ご用件",
    "optional": "（任意）",
    "contactHint": "メールアドレスまたは電話番号のどちらかは必ずご入力ください。",
    "contactSubmit": "連絡先を送信",
    "contactToggleClose": "フォームを閉じる",
    "contactToggleOpen": "フォームを開く",
    "errNeedOne": "メールアドレスまたは電話番号のどちらかを入力してください。",
    "errEmail": "メールアドレスの形式が正しくありません（例: taro@example.jp）。",
    "errPhone": "電話番号は10〜11桁の数字で入力してください（ハイフン可）。",
    "contactSaved": "ご連絡先を承りました。受付時間内に担当者からご連絡いたします。",
    "endChat": "会話を終了",
    "endConfirm": "会話を終了しますか？ この画面の会話の記録も消えます。",
    "endYes": "終了する",
    "endNo": "キャンセル",
    "ended": "会話を終了しました。ご利用ありがとうございました。新しいご質問はいつでもどうぞ。",
    "surveyTitle": "アンケート",
    "surveyRating": "{n}（{label}）",
    "surveyPick": "評価を 1〜5 から選んでください。",
    "surveyCommentMax": "ご意見は{max}文字以内でお書きください（いまは {n} 文字）。",
    "mailTitle": "会話の記録をメールで受け取る",
    "mailLabel": "送り先のメールアドレス",
    "mailSend": "メールで送る",
    "mailSent": "会話の記録をメールでお送りします。届くまで数分かかることがあります。",
}
# Facts filled in when the block is written (the widget cannot read the fact sheet).
WIDGET_BUILD_FIELDS = ("contact", "hours")


def widget_text(directory: Path | None = None) -> dict[str, str]:
    """:data:`WIDGET_TEXT` with the fact sheet's contact and hours filled in; run-time fields stay."""
    known = {"contact": fallback_contact(directory), "hours": fact("hours.staffed", directory, "受付時間")}
    return {key: text.replace("{contact}", known["contact"]).replace("{hours}", known["hours"])
            for key, text in WIDGET_TEXT.items()}


# ---------------------------------------------------------------------------
# The console's canned-reply picker (bot/server/static/console/canned.js, block written by `bot kb build`)
# ---------------------------------------------------------------------------

CONSOLE_CANNED_TEXT = {
    "hint": "「/」に続けて入力すると、定型文と FAQ の回答を探せます",
    "listLabel": "定型文と FAQ の回答",
    "canned": "定型文",
    "faq": "FAQ",
    "loading": "定型文を読み込んでいます…",
    "none": "「{q}」に当てはまる定型文・FAQ はありません（Esc で閉じると、そのまま送信できます）。",
    "count": "候補 {n} 件。↑↓ で選び、Enter で返信欄に入れます。Esc で閉じます。",
    "inserted": "「{title}」を返信欄に入れました。送信する前に内容を確認してください。",
}


# ---------------------------------------------------------------------------
# What agents and editors see of the bot's decision (console, analytics)
# ---------------------------------------------------------------------------

DECISION_PREFIX = "ボットの判定"
CONFIDENCE_LABEL = "確からしさ"
UNDECIDED = "判定できず"
# Intents other than FAQ entries (those are named by the entry's title).
INTENT_LABELS = {
    "nlu_fallback": UNDECIDED,
    "faq": "よくある質問",
    "request_human": "担当者との会話を希望",
    "request_human_unresolved": "担当者との会話を希望（解決せず）",
    "complaint": "苦情",
    "greet": "あいさつ",
    "goodbye": "終わりのあいさつ",
    "thanks": "お礼",
    "affirm": "はい",
    "deny": "いいえ",
    "bot_challenge": "AIチャットかどうかの確認",
    "out_of_scope": "サービスと関係のない話題",
    "preamble": "質問の前置き",
    "give_up": "あきらめ",
    "not_that": "別の回答を希望",
    "non_japanese": "日本語以外",
    "answer_not_helpful": "回答が役に立たなかった",
    "answer_helpful": "回答が役に立った",
    "no_words": "文字のないメッセージ",
}


def intent_name_ja(intent: str | None, kb: Any = None) -> str:
    """Japanese name of an intent: the FAQ entry's title, a label above, or 「判定できず」.

    Args:
        intent: Intent name (``faq_change_address``, ``request_human``, ``nlu_fallback`` ...).
        kb: The knowledge base, to name FAQ entries by title (``None``: loaded lazily).
    """
    if not intent:
        return UNDECIDED
    if intent.startswith("faq_"):
        if kb is None:
            try:
                from bot.knowledge.live import shared_knowledge
                from bot.settings import get_settings

                kb = shared_knowledge(get_settings().knowledge_dir).get()
            except Exception:  # noqa: BLE001 - a label must never break the console
                kb = None
        entry = kb.by_intent(intent) if kb is not None else None
        return entry.title if entry is not None else f"FAQ {intent[4:].replace('_', '-')}（いまはない項目）"
    return INTENT_LABELS.get(intent, intent)


def decision_label(intent: str | None, confidence: float | None, kb: Any = None) -> str:
    """「ボットの判定: 住所を変更したい（確からしさ 53%）」 or 「ボットの判定: 判定できず」."""
    label = intent_name_ja(intent, kb)
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or label == UNDECIDED:
        return f"{DECISION_PREFIX}: {label}"
    return f"{DECISION_PREFIX}: {label}（{CONFIDENCE_LABEL} {round(confidence * 100)}%）"
