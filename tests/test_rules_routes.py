"""The dialogue rules, the domain and bot/dialogue/routes.py tell one story."""

import yaml

from bot.dialogue.routes import ACTION_ANSWER_FAQ, ACTION_OF_INTENT, ROUTE_OF_ACTION
from bot.knowledge.loader import load_knowledge
from bot.settings import PROJECT_ROOT


def _all_rules() -> list[dict]:
    return [rule for path in sorted((PROJECT_ROOT / "data" / "stories").glob("*.yml"))
            for rule in yaml.safe_load(path.read_text(encoding="utf-8")).get("rules", [])]


def _context_rules() -> list[dict]:
    """Rules that start with the bot's previous action (what a reply means after a miss)."""
    return [rule for rule in _all_rules() if "action" in rule["steps"][0]]


def _rules() -> dict[str, str]:
    """Intent -> action of the rules that hold whatever came before (one per intent)."""
    pairs = {}
    for rule in _all_rules():
        steps = rule["steps"]
        if "action" in steps[0]:
            continue  # a context rule (_context_rules)
        intents = [s["intent"] for s in steps if "intent" in s]
        actions = [s["action"] for s in steps if "action" in s]
        assert len(intents) == 1 and len(actions) == 1, rule["rule"]
        assert intents[0] not in pairs, f"two rules for {intents[0]}"
        pairs[intents[0]] = actions[0]
    return pairs


def test_after_a_miss_no_or_goodbye_offers_a_person() -> None:
    """「いいえ」/「じゃあいいです」 right after out of scope or asking back is giving up."""
    context = {(r["steps"][0]["action"], r["steps"][1]["intent"]): r["steps"][2]["action"] for r in _context_rules()}
    for miss in ("action_out_of_scope", "action_clarify"):
        for reply in ("deny", "goodbye"):
            assert context[(miss, reply)] == "action_offer_human", (miss, reply)
    # Without a miss before them, they keep their own replies.
    assert _rules()["deny"] == "utter_deny" and _rules()["goodbye"] == "utter_goodbye"


def test_every_non_faq_intent_rule_matches_route_table() -> None:
    rules = _rules()
    for intent, action in ACTION_OF_INTENT.items():
        assert rules.get(intent) == action, intent


def test_one_faq_intent_for_every_entry_no_intent_per_entry() -> None:
    """Entries are chosen by the FAQ search at run time; the domain must not grow with them."""
    rules = _rules()
    assert rules.get("faq") == ACTION_ANSWER_FAQ
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    entries = load_knowledge(PROJECT_ROOT / "knowledge").entries
    assert not {e.intent for e in entries} & (set(domain["intents"]) | set(rules))


def test_every_rule_action_has_a_route_and_exists_in_domain() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    known = set(domain["actions"]) | set(domain["responses"])
    for action in set(_rules().values()):
        assert action in ROUTE_OF_ACTION, action
        assert action in known, action


def test_domain_lists_every_intent_used_by_rules() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = set(domain["intents"]) | {"nlu_fallback"}
    assert set(_rules()) <= intents


def test_japanese_replies_for_every_response() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    for name, variants in domain["responses"].items():
        assert variants and all(any("\u3040" <= ch <= "\u30ff" for ch in v["text"]) for v in variants), name


def test_one_variant_per_response() -> None:
    """`bot ask` prints variant [0]; Rasa picks one at random, so keep one each."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert {name: len(v) for name, v in domain["responses"].items() if len(v) != 1} == {}
