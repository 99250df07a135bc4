"""The contact form a customer fills in outside staffed hours (offline ticket)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_DIGITS = re.compile(r"^0\d{9,10}$")  # Japanese numbers: 10 or 11 digits starting with 0
MAX_CHARS = {"name": 100, "email": 254, "phone": 20, "note": 1000}


class ContactError(ValueError):
    """The form cannot be accepted; the message tells the customer what to fix."""


def clean_contact(form: dict[str, Any]) -> dict[str, str]:
    """Validated contact details (NFKC: full-width digits and ＠ are accepted).

    Raises:
        ContactError: No email or phone, a malformed one, or a field too long.
    """
    values = {key: unicodedata.normalize("NFKC", str(form.get(key) or "")).strip() for key in MAX_CHARS}
    for key, limit in MAX_CHARS.items():
        if len(values[key]) > limit:
            raise ContactError(f"{_LABELS[key]}は {limit} 文字以内で入力してください。")
    if not values["email"] and not values["phone"]:
        raise ContactError("メールアドレスか電話番号のどちらかを入力してください。")
    if values["email"] and not EMAIL.match(values["email"]):
        raise ContactError("メールアドレスの形式が正しくありません（例: taro@example.jp）。")
    if values["phone"]:
        digits = re.sub(r"[-\s()]", "", values["phone"])
        if not PHONE_DIGITS.match(digits):
            raise ContactError("電話番号は 0 から始まる 10〜11 桁の数字で入力してください（例: 03-1234-5678）。")
        values["phone"] = digits
    return {key: value for key, value in values.items() if value}


_LABELS = {"name": "お名前", "email": "メールアドレス", "phone": "電話番号", "note": "ご用件"}
