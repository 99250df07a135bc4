"""Our Rasa NLU components on hand-made messages (no trained model)."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.anger import AngerScorer
from bot.nlu.message_guard import MessageGuard, has_words
from bot.triage.anger import AngerRules

RULES = AngerRules(threshold=0.6, model_weight=1.0, phrases={"ふざけるな": 1.0})


def message(text: str, ranking: list[tuple[str, float]]) -> Message:
    msg = Message(data={"text": text})
    items = [{"name": n, "confidence": c} for n, c in ranking]
    msg.set("intent", items[0] if items else {"name": None, "confidence": 0.0})
    msg.set("intent_ranking", items)
    return msg


def test_anger_scorer_stores_combined_and_rule_scores() -> None:
    msg = message("住所変更したのに反映されない、ふざけるな", [("faq", 0.9), ("complaint", 0.05)])
    AngerScorer(RULES).process([msg])
    anger = msg.get("anger")
    assert anger["rule_score"] == 1.0 and anger["score"] == 1.0 and anger["threshold"] == 0.6
    assert "ふざけるな" in anger["signals"]


def test_anger_scorer_adds_the_classifier_complaint_probability() -> None:
    msg = message("対応が遅い", [("complaint", 0.8), ("faq", 0.1)])
    AngerScorer(RULES).process([msg])
    assert msg.get("anger")["rule_score"] == 0.0
    assert msg.get("anger")["score"] == pytest.approx(0.8)
    assert msg.get("intent")["name"] == "complaint"  # scoring never relabels; the router decides


@pytest.mark.parametrize(("text", "expected"), [("", False), ("  ", False), ("😀!?", False), ("〜", False),
                                                ("a", True), ("住所", True), ("ｱ", True), ("1", True),
                                                ("(´・ω・｀)", False), ("(ﾟДﾟ)", False), ("ｷﾀ(ﾟ∀ﾟ)", True)])
def test_has_words(text: str, expected: bool) -> None:
    assert has_words(text) is expected


def test_guard_marks_wordless_messages() -> None:
    msg = message("😀😀", [("greet", 0.9)])
    msg.set("normalized_text", "😀😀")
    MessageGuard().process([msg])
    assert msg.get("intent")["name"] == "nlu_fallback"
    assert msg.get("input_issue") == "no_words"


@pytest.mark.parametrize(
    ("text", "guarded"),
    [
        ("https://members.mirai-net.example/mypage", True),  # a link alone: asked what it is about
        ("www.example.com/help", True),
        ("住所変更 https://members.mirai-net.example/mypage", False),  # words beside the link count
    ],
)
def test_guard_treats_a_link_alone_as_wordless(text: str, guarded: bool) -> None:
    msg = message(text, [("faq", 0.9)])
    msg.set("normalized_text", text)
    MessageGuard().process([msg])
    assert (msg.get("input_issue") == "no_words") is guarded
    assert (msg.get("intent")["name"] == "nlu_fallback") is guarded


def _tokenized(text: str, lemmas: list[str]) -> Message:
    from rasa.nlu.tokenizers.tokenizer import Token

    msg = Message(data={"text": text})
    msg.set("text_tokens", [Token(lemma, i, lemma=lemma) for i, lemma in enumerate(lemmas)])
    return msg


def test_ginza_featurizer_adds_only_the_sentence_vector_by_default() -> None:
    """The classifier reads sentence features; per-token rows only cost memory in training."""
    import numpy as np

    from bot.nlu.ginza_vectors import GinzaVectorFeaturizer

    msg = _tokenized("住所を変更", ["住所", "を", "変更"])
    GinzaVectorFeaturizer({}, "ginza").process([msg])
    sequence, sentence = msg.get_dense_features("text")
    assert sequence is None
    assert sentence.features.shape == (1, 300) and np.abs(sentence.features).sum() > 0

    with_tokens = _tokenized("住所を変更", ["住所", "を", "変更"])
    GinzaVectorFeaturizer({"sequence_features": True}, "ginza").process([with_tokens])
    sequence, same_sentence = with_tokens.get_dense_features("text")
    assert sequence.features.shape == (3, 300)
    assert np.allclose(same_sentence.features, sentence.features)


def test_sparse_fingerprint_tells_matrices_apart_like_rasas_text_form() -> None:
    """Same non-zeros -> same fingerprint; any changed value, position or shape -> a new one."""
    import numpy as np
    import scipy.sparse
    from rasa.shared.nlu.training_data import util
    from rasa.shared.nlu.training_data.features import Features

    from bot.nlu.rasa_fingerprint import sparse_matrix_fingerprint

    assert util.sparse_matrix_to_string is sparse_matrix_fingerprint  # installed by importing bot.nlu
    base = scipy.sparse.coo_matrix(np.array([[0, 1.0, 0], [2.0, 0, 0]]))
    same = scipy.sparse.csr_matrix(np.array([[0, 1.0, 0], [2.0, 0, 0]]))
    variants = [np.array([[0, 1.0, 0], [2.5, 0, 0]]), np.array([[1.0, 0, 0], [2.0, 0, 0]]),
                np.array([[0, 1.0, 0, 0], [2.0, 0, 0, 0]])]
    assert sparse_matrix_fingerprint(base) == sparse_matrix_fingerprint(same)
    for other in variants:
        assert sparse_matrix_fingerprint(scipy.sparse.coo_matrix(other)) != sparse_matrix_fingerprint(base)
    first = Features(base, "sentence", "text", "cvf").fingerprint()
    assert first == Features(same.tocoo(), "sentence", "text", "cvf").fingerprint()
    assert first != Features(scipy.sparse.coo_matrix(variants[0]), "sentence", "text", "cvf").fingerprint()


def test_classifier_features_equal_rasas_combined_sentence_features() -> None:
    """Joining only the sentence parts gives Rasa's own combination, column for column."""
    import numpy as np
    import scipy.sparse
    from rasa.shared.nlu.training_data.features import Features

    from bot.nlu.classifier import _features

    msg = Message(data={"text": "住所を変更したい"})
    rng = np.random.default_rng(0)
    for origin, width in (("words", 7), ("chars", 5)):
        msg.add_features(Features(scipy.sparse.coo_matrix(rng.integers(0, 2, (3, width)).astype(float)),
                                  "sequence", "text", origin))
        msg.add_features(Features(scipy.sparse.coo_matrix(rng.integers(0, 3, (1, width)).astype(float)),
                                  "sentence", "text", origin))
    msg.add_features(Features(rng.random((1, 4)).astype(np.float32), "sentence", "text", "vectors"))
    sparse, dense = _features(msg)
    assert sparse.shape == (1, 12)
    assert (sparse != msg.get_sparse_features("text")[1].features.tocsr()).nnz == 0
    assert np.array_equal(dense, msg.get_dense_features("text")[1].features.reshape(1, -1))
    assert _features(Message(data={"text": "x"})) is None


def test_hashed_token_fingerprint_follows_every_field() -> None:
    from bot.nlu.rasa_fingerprint import HashedToken

    def token(**changes: object) -> HashedToken:
        fields = {"text": "じゅうしょ", "start": 0, "end": 2, "lemma": "住所", **changes}
        return HashedToken(**fields)  # type: ignore[arg-type]

    base = token().fingerprint()
    assert base == token().fingerprint()
    for changes in ({"text": "じゅうしょう"}, {"start": 1}, {"end": 3}, {"lemma": "住処"}, {"data": {"pos": "名詞"}}):
        assert token(**changes).fingerprint() != base
    with_data = token()
    with_data.set("pos", "名詞")
    assert with_data.fingerprint() == token(data={"pos": "名詞"}).fingerprint()
