"""What LINE customers read that the widget does not show (Japanese).

The rest (bot answers, 担当者 notices, 役に立ちましたか？) is the same text the widget
shows, from bot/wording.py and the gateway.
"""

from __future__ import annotations

TEXT = {
    "media": "申し訳ございません。AIチャットは文字のメッセージだけを読み取れます。"
             "画像・スタンプ・位置情報などの内容は確認できないため、ご用件を文章でお送りください。",
    "media_note": "お客さまが{kind}を送信しました（LINE。内容は受け取っていません）。",
    "greeting": "友だち追加ありがとうございます。みらいメンバーズ サポートのAIチャットです。"
                "ご質問をメッセージでお送りください。担当者におつなぎすることもできます。",
    "greeting_group": "グループに追加いただきありがとうございます。みらいメンバーズ サポートのAIチャットです。"
                      "ご質問をメッセージでお送りください。",
    "push_failed": "LINE への送信に失敗しました（{error}）。お客さまに届いていない可能性があります: {text}",
    "channel_off": "LINE 連携: 無効（LINE_CHANNEL_SECRET と LINE_CHANNEL_ACCESS_TOKEN を設定すると有効になります。docs/line.md）",
    "channel_on": "LINE 連携: 有効（Webhook のパスは /line/webhook。https で公開した URL を LINE Developers コンソールに登録します。docs/line.md）",
}

# How agents see the media kinds in the ticket.
MEDIA_NAMES = {"image": "画像", "video": "動画", "audio": "音声", "file": "ファイル", "location": "位置情報",
               "sticker": "スタンプ"}
