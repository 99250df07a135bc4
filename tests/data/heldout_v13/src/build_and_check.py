#!/usr/bin/env python3
"""Build the heldout_v13 JSONL files from the hand-written lists in src/.

The lists are plain text, one message per line, grouped under `## <label>`
header lines.  This script only parses them, runs the checks and, when every
check passes, writes the JSONL files next to src/.  It generates no text.

List formats
  heldout.txt    ## <label>                       text
  everyday.txt   ## out_of_scope                  text
  complaint.txt  ## complaint                     text
  vague.txt      ## vague                         text ||| id,id,...   (empty after ||| = [])
  giveup.txt     ## give_up miss | not_helpful    text
  foreign.txt    ## non_japanese en | zh | ko     text

Usage: python3 src/build_and_check.py [--check-only]
"""
import json
import re
import statistics
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent
OUT = SRC.parent

FAQ_IDS = [
    "change-address", "change-phone", "change-email", "change-name",
    "change-payment", "reset-password", "change-plan", "cancel", "hours",
    "pricing", "contact", "invoice", "payment-methods", "trial",
    "inquiry-status", "feedback",
]
SMALL = ["greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"]

EXPECTED_HELDOUT = {**{k: 22 for k in FAQ_IDS}, **{k: 8 for k in SMALL},
                    "request_human": 30}
EXPECTED_TOTALS = {
    "heldout.jsonl": 430,
    "heldout_everyday.jsonl": 600,
    "heldout_complaint.jsonl": 250,
    "heldout_vague.jsonl": 150,
    "heldout_giveup.jsonl": 110,
    "heldout_foreign.jsonl": 70,
}
SERVICE_NAME_RE = re.compile(r"みらい|ミライ|ﾐﾗｲ|mirai|未来", re.IGNORECASE)

errors = []


def err(msg):
    errors.append(msg)


def read_sections(name):
    """Return list of (header_tokens, text, lineno)."""
    path = SRC / name
    header = None
    out = []
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("## "):
            header = line[3:].split()
            continue
        if header is None:
            err(f"{name}:{i}: text before first header")
            continue
        if line != line.strip():
            err(f"{name}:{i}: leading/trailing whitespace")
        out.append((header, line.strip(), i))
    return out


def is_emoji(ch):
    cp = ord(ch)
    return (0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF
            or 0x2300 <= cp <= 0x23FF or cp in (0xFE0F, 0x200D))


def normalise(text):
    t = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in t
                   if unicodedata.category(ch)[0] in ("L", "N"))


HALF_KANA_RE = re.compile(r"[\uFF66-\uFF9F]")
FULL_ALNUM_RE = re.compile(r"[\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A]")
HIRA_RE = re.compile(r"[\u3041-\u309F]")
KATA_RE = re.compile(r"[\u30A0-\u30FF\uFF66-\uFF9F]")
HAN_RE = re.compile(r"[\u4E00-\u9FFF]")
HANGUL_RE = re.compile(r"[\uAC00-\uD7AF\u1100-\u11FF\u3130-\u318F]")
KAOMOJI_RE = re.compile(r"[（(][^()（）]{1,12}[)）]|[´｀ω∀￣▽゜°╬ಠ益≧≦]")


def all_hiragana(text):
    letters = [c for c in text if unicodedata.category(c)[0] == "L"]
    return bool(letters) and all(HIRA_RE.match(c) or c == "ー" for c in letters)


def style_stats(name, texts):
    n = len(texts)
    lens = [len(t) for t in texts]
    feats = Counter()
    for t in texts:
        if len(t) >= 60:
            feats[">=60 chars"] += 1
        if HALF_KANA_RE.search(t):
            feats["half-width katakana"] += 1
        if FULL_ALNUM_RE.search(t):
            feats["full-width alnum"] += 1
        if any(is_emoji(c) for c in t):
            feats["emoji"] += 1
        if KAOMOJI_RE.search(t):
            feats["kaomoji-ish"] += 1
        if all_hiragana(t):
            feats["all hiragana"] += 1
        if t.endswith(("？", "?")):
            feats["ends with ?"] += 1
    print(f"  {name}: n={n} len min/median/mean/max = {min(lens)}/"
          f"{statistics.median(lens)}/{statistics.mean(lens):.1f}/{max(lens)}")
    for k in [">=60 chars", "half-width katakana", "full-width alnum", "emoji",
              "kaomoji-ish", "all hiragana", "ends with ?"]:
        print(f"      {k:22s} {feats[k]:4d} ({100 * feats[k] / n:.1f}%)")


def main():
    check_only = "--check-only" in sys.argv
    files = {}

    # heldout.jsonl
    recs = []
    for hdr, text, i in read_sections("heldout.txt"):
        label = hdr[0]
        if label not in EXPECTED_HELDOUT:
            err(f"heldout.txt:{i}: unknown label {label}")
        recs.append({"text": text, "label": label})
    c = Counter(r["label"] for r in recs)
    for k, v in EXPECTED_HELDOUT.items():
        if c[k] != v:
            err(f"heldout: label {k} has {c[k]}, expected {v}")
    files["heldout.jsonl"] = recs

    # everyday
    recs = []
    for hdr, text, i in read_sections("everyday.txt"):
        if hdr != ["out_of_scope"]:
            err(f"everyday.txt:{i}: bad header {hdr}")
        if SERVICE_NAME_RE.search(unicodedata.normalize("NFKC", text)) or \
                SERVICE_NAME_RE.search(text):
            err(f"everyday.txt:{i}: names the service: {text}")
        recs.append({"text": text, "label": "out_of_scope"})
    files["heldout_everyday.jsonl"] = recs

    # complaint
    recs = []
    for hdr, text, i in read_sections("complaint.txt"):
        if hdr != ["complaint"]:
            err(f"complaint.txt:{i}: bad header {hdr}")
        recs.append({"text": text, "label": "complaint"})
    files["heldout_complaint.jsonl"] = recs

    # vague
    recs = []
    for hdr, text, i in read_sections("vague.txt"):
        if hdr != ["vague"]:
            err(f"vague.txt:{i}: bad header {hdr}")
        if "|||" not in text:
            err(f"vague.txt:{i}: missing ||| topics")
            continue
        msg, topics = [p.strip() for p in text.split("|||", 1)]
        ids = [t.strip() for t in topics.split(",") if t.strip()]
        bad = [t for t in ids if t not in FAQ_IDS]
        if bad:
            err(f"vague.txt:{i}: unknown topic ids {bad}")
        if len(set(ids)) != len(ids):
            err(f"vague.txt:{i}: repeated topic id")
        if not (len(ids) == 0 or 2 <= len(ids) <= 6):
            err(f"vague.txt:{i}: {len(ids)} topics (need 0 or 2-6)")
        recs.append({"text": msg, "label": "vague", "topics": ids})
    files["heldout_vague.jsonl"] = recs

    # giveup
    recs = []
    for hdr, text, i in read_sections("giveup.txt"):
        if len(hdr) != 2 or hdr[0] != "give_up" or hdr[1] not in ("miss", "not_helpful"):
            err(f"giveup.txt:{i}: bad header {hdr}")
            continue
        recs.append({"text": text, "label": "give_up", "after": hdr[1]})
    c = Counter(r["after"] for r in recs)
    if c["miss"] != 60 or c["not_helpful"] != 50:
        err(f"giveup: after split {dict(c)}, expected miss=60 not_helpful=50")
    files["heldout_giveup.jsonl"] = recs

    # foreign
    recs = []
    langs = Counter()
    for hdr, text, i in read_sections("foreign.txt"):
        if len(hdr) != 2 or hdr[0] != "non_japanese" or hdr[1] not in ("en", "zh", "ko"):
            err(f"foreign.txt:{i}: bad header {hdr}")
            continue
        lang = hdr[1]
        langs[lang] += 1
        if lang == "en":
            if HIRA_RE.search(text) or KATA_RE.search(text) or HAN_RE.search(text) \
                    or HANGUL_RE.search(text):
                err(f"foreign.txt:{i}: en line has CJK: {text}")
            if not re.search(r"[A-Za-z]{3}", text):
                err(f"foreign.txt:{i}: en line without English words")
        elif lang == "zh":
            if HIRA_RE.search(text) or KATA_RE.search(text) or HANGUL_RE.search(text):
                err(f"foreign.txt:{i}: zh line has kana/hangul: {text}")
            if not HAN_RE.search(text):
                err(f"foreign.txt:{i}: zh line has no Han")
        elif lang == "ko":
            if not HANGUL_RE.search(text) or HIRA_RE.search(text) or KATA_RE.search(text):
                err(f"foreign.txt:{i}: ko line not Korean: {text}")
        recs.append({"text": text, "label": "non_japanese"})
    if langs != Counter({"en": 30, "zh": 25, "ko": 15}):
        err(f"foreign: language split {dict(langs)}, expected en=30 zh=25 ko=15")
    files["heldout_foreign.jsonl"] = recs

    # totals
    for fname, n in EXPECTED_TOTALS.items():
        if len(files[fname]) != n:
            err(f"{fname}: {len(files[fname])} records, expected {n}")

    # duplicates after normalisation, across all files
    seen = {}
    for fname, recs in files.items():
        for r in recs:
            key = normalise(r["text"])
            if not key:
                err(f"{fname}: empty after normalisation: {r['text']!r}")
                continue
            if key in seen:
                err(f"duplicate after normalisation: {r['text']!r} ({fname}) "
                    f"~ {seen[key][1]!r} ({seen[key][0]})")
            else:
                seen[key] = (fname, r["text"])

    # style statistics
    print("Counts:")
    for fname, recs in files.items():
        print(f"  {fname}: {len(recs)}")
    print("heldout labels:", dict(Counter(r["label"] for r in files["heldout.jsonl"])))
    print("giveup after:", dict(Counter(r["after"] for r in files["heldout_giveup.jsonl"])))
    print("foreign languages:", dict(langs))
    vt = Counter(len(r["topics"]) for r in files["heldout_vague.jsonl"])
    print("vague topic-count distribution:", dict(sorted(vt.items())))
    tc = Counter(t for r in files["heldout_vague.jsonl"] for t in r["topics"])
    print("vague topic frequency:", dict(tc.most_common()))
    print("Style statistics:")
    faq = [r["text"] for r in files["heldout.jsonl"] if r["label"] in FAQ_IDS]
    style_stats("heldout (16 FAQ labels)", faq)
    per_label_long = defaultdict(int)
    for r in files["heldout.jsonl"]:
        if r["label"] in FAQ_IDS and len(r["text"]) >= 60:
            per_label_long[r["label"]] += 1
    print("      >=60 per FAQ label:", dict(per_label_long))
    style_stats("heldout (all)", [r["text"] for r in files["heldout.jsonl"]])
    for fname in list(files)[1:]:
        style_stats(fname, [r["text"] for r in files[fname]])

    if errors:
        print(f"\n{len(errors)} CHECK(S) FAILED; nothing written:")
        for e in errors:
            print("  -", e)
        sys.exit(1)
    print("\nAll checks passed.")
    if check_only:
        return
    for fname, recs in files.items():
        with open(OUT / fname, "w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("Wrote:", ", ".join(files))


if __name__ == "__main__":
    main()
