"""Customers' phrasings (knowledge/phrasings.yml): read, checked, searched, reloaded; and the demo's
file holds what benchmarks/faq_phrasings.py adds and no held-out text."""

import json
import textwrap
import time
from pathlib import Path

from benchmarks import faq_phrasings
from bot.evaluation.report import match_key
from bot.knowledge.live import LiveKnowledge
from bot.knowledge.loader import load_knowledge
from bot.knowledge.phrasings import PHRASINGS_FILE, read_phrasings
from bot.knowledge.search import FaqSearch
from bot.knowledge.validate import validate_knowledge

# A customer's wording that shares no content word with the entry's own questions.
MOVING = "来月から大阪勤務になるので荷物の届け先をどうにかしたい"


def _kb(directory: Path, phrasings: str | None = None) -> Path:
    (directory / "faq").mkdir(parents=True)
    (directory / "faq" / "a.yml").write_text(textwrap.dedent("""\
        entries:
          - id: change-address
            category: 登録情報
            title: 住所の変更
            questions:
              - 住所を変更したい
              - 引っ越しした
            answer: マイページの「会員情報」から住所を変更できます。
          - id: hours
            category: サービス
            title: 営業時間
            questions:
              - 営業時間を教えて
              - 何時まで開いていますか
            answer: 平日9時から18時までです。
          - id: pricing
            category: サービス
            title: 料金
            questions:
              - 料金はいくらですか
              - 月額を知りたい
            answer: 月額1,980円です。
        """), encoding="utf-8")
    if phrasings is not None:
        (directory / PHRASINGS_FILE).write_text(phrasings, encoding="utf-8")
    return directory


GOOD = textwrap.dedent(f"""\
    phrasings:
      change-address:
        - {MOVING}
        - 転勤で大阪に行きます
        - 転勤で大阪に行きます
""")


def test_missing_file_means_no_phrasings(tmp_path: Path) -> None:
    assert read_phrasings(_kb(tmp_path / "kb")) == ({}, [])
    assert all(entry.phrasings == () for entry in load_knowledge(tmp_path / "kb").entries)


def test_phrasings_are_attached_to_their_entry_once_each(tmp_path: Path) -> None:
    kb = load_knowledge(_kb(tmp_path / "kb", GOOD))
    assert kb.get("change-address").phrasings == (MOVING, "転勤で大阪に行きます")
    assert kb.get("hours").phrasings == ()
    assert kb.get("change-address").questions == ("住所を変更したい", "引っ越しした")  # questions untouched


def test_the_search_matches_a_phrasing_like_a_question(tmp_path: Path) -> None:
    without = FaqSearch.from_directory(_kb(tmp_path / "plain")).search(MOVING, top=3)
    with_phrasings = FaqSearch.from_directory(_kb(tmp_path / "kb", GOOD)).search(MOVING, top=3)
    assert with_phrasings[0].faq_id == "change-address"
    assert with_phrasings[0].matched == MOVING
    before = next((h.score for h in without if h.faq_id == "change-address"), 0.0)
    assert with_phrasings[0].score > before + 0.2


def test_unknown_id_is_a_warning_and_the_rest_is_used(tmp_path: Path) -> None:
    text = GOOD + "  no-such-entry:\n    - 何か\n"
    directory = _kb(tmp_path / "kb", text)
    found, findings = read_phrasings(directory, {"change-address", "hours", "pricing"})
    assert set(found) == {"change-address"}
    assert [(f.severity, f.entry, f.line) for f in findings] == [("warning", "no-such-entry", 6)]
    assert "no-such-entry" in findings[0].problem and "消して" in findings[0].fix
    problems = [p for p in validate_knowledge(directory, check_published=False) if p.path.name == PHRASINGS_FILE]
    assert [(p.severity, p.entry) for p in problems] == [("warning", "no-such-entry")]


def test_a_broken_file_is_an_error_for_editors_but_never_stops_the_bot(tmp_path: Path) -> None:
    directory = _kb(tmp_path / "kb", "phrasings:\n  change-address:\n    - いい\n   - 字下げがずれた\n")
    found, findings = read_phrasings(directory)
    assert found == {} and len(findings) == 1 and findings[0].severity == "error" and findings[0].line == 4
    assert load_knowledge(directory).get("change-address").phrasings == ()
    problems = [p for p in validate_knowledge(directory, check_published=False) if p.path.name == PHRASINGS_FILE]
    assert [p.severity for p in problems] == ["error"]


def test_a_block_that_is_not_a_list_is_an_error_and_left_out(tmp_path: Path) -> None:
    directory = _kb(tmp_path / "kb", GOOD + "  hours: 何時まで？\n  pricing: [1, 2]\n")
    found, findings = read_phrasings(directory)
    assert set(found) == {"change-address"}
    assert [(f.entry, f.severity) for f in findings] == [("hours", "error"), ("pricing", "error")]
    _, no_key = read_phrasings(_kb(tmp_path / "other", "- 住所を変えたい\n"))
    assert len(no_key) == 1 and "phrasings:" in no_key[0].problem


def test_an_edit_of_the_file_reaches_the_running_search(tmp_path: Path) -> None:
    directory = _kb(tmp_path / "kb")
    live = LiveKnowledge(directory, check_interval=0.0)
    assert live.get().get("change-address").phrasings == ()
    (directory / PHRASINGS_FILE).write_text(GOOD, encoding="utf-8")
    deadline = time.monotonic() + 10
    while live.get().get("change-address").phrasings == () and time.monotonic() < deadline:
        time.sleep(0.05)
    assert MOVING in live.get().get("change-address").phrasings


def test_the_demo_file_holds_what_the_script_adds() -> None:
    """Run `python -m benchmarks.faq_phrasings` after adding a writer batch or retiring a generation."""
    current, findings = read_phrasings(faq_phrasings.KNOWLEDGE, set(load_knowledge(faq_phrasings.KNOWLEDGE).ids))
    assert findings == []
    assert sum(map(len, current.values())) > 2000
    for faq_id, texts in faq_phrasings.new_phrasings().items():
        assert set(texts) <= set(current.get(faq_id, ())), faq_id


def test_no_demo_phrasing_is_a_held_out_or_tuning_text(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    current, _ = read_phrasings(faq_phrasings.KNOWLEDGE)
    keys = {match_key(text) for texts in current.values() for text in texts}
    protected = faq_phrasings.protected_texts()
    assert not keys & protected
    # The check covers a read generation and the unread one (without reading its texts here).
    newest_read = Path(__file__).parent / "data" / "heldout_v10" / "heldout.jsonl"
    assert match_key(json.loads(newest_read.read_text(encoding="utf-8").splitlines()[0])["text"]) in protected
    monkeypatch.setattr(faq_phrasings, "UNREAD_GENERATIONS", ())
    assert len(faq_phrasings.protected_texts()) < len(protected)


def test_a_phrasing_with_personal_data_is_an_error_shown_masked_and_left_out(tmp_path: Path) -> None:
    card, phone, mail = "4111 1111 1111 1111", "090-1234-5678", "taro.yamada@example.com"
    text = GOOD + (f"  pricing:\n    - カード {card} で払った分の料金は？\n    - {phone} に電話ください、料金の件\n"
                   f"    - {mail} に料金表を送って\n    - 料金はいくら\n    - （電話番号）に料金の件で電話ください\n")
    directory = _kb(tmp_path / "kb", text)
    found, findings = read_phrasings(directory)
    assert found["pricing"] == ("料金はいくら", "（電話番号）に料金の件で電話ください")  # the fix's wording passes
    assert [(f.entry, f.severity) for f in findings] == [("pricing", "error")] * 3
    shown = " ".join(f.problem for f in findings)
    for secret in ("1111 1111 1111", "1234-5678", "taro.yamada"):
        assert secret not in shown  # the finding never repeats the number itself
    assert "個人情報" in findings[0].problem and "（電話番号）" in findings[0].fix
    assert load_knowledge(directory).get("pricing").phrasings == found["pricing"]
    problems = [p for p in validate_knowledge(directory, check_published=False) if p.path.name == PHRASINGS_FILE]
    assert [p.severity for p in problems] == ["error"] * 3
