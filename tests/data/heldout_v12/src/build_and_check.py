#!/usr/bin/env python3
"""Turn the hand-written source lists in src/ into JSONL (verbatim) and check them.

Source format: UTF-8 text, one message per line, blank lines ignored.
A line starting with "## " is a header that sets the label (and, for some
files, an extra field) for the lines below it.
  heldout_*.txt    : "## <label>"
  everyday_*.txt   : "## out_of_scope"
  complaint_*.txt  : "## complaint"
  vague.txt        : "## vague"; each line is "{id,id,...} text" ("{} text" = no topics)
  giveup.txt       : "## give_up miss" / "## give_up not_helpful"
  foreign.txt      : "## non_japanese en|zh|ko" (language is only used for checks)
Run from anywhere:  python3 src/build_and_check.py
"""
import glob
import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)

FAQ = ["change-address", "change-phone", "change-email", "change-name",
       "change-payment", "reset-password", "change-plan", "cancel", "hours",
       "pricing", "contact", "invoice", "payment-methods", "trial",
       "inquiry-status", "feedback"]
SMALL = ["greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"]

errors = []


def err(msg):
    errors.append(msg)


def read_src(pattern):
    """Yield (header_tokens, text, file, lineno)."""
    files = sorted(glob.glob(os.path.join(HERE, pattern)))
    if not files:
        err(f"no source files for {pattern}")
    for fn in files:
        header = None
        with open(fn, encoding="utf-8") as f:
            for i, raw in enumerate(f, 1):
                line = raw.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                if line.startswith("## "):
                    header = line[3:].split()
                    continue
                if header is None:
                    err(f"{fn}:{i}: text before any header")
                    continue
                if line != line.strip():
                    err(f"{fn}:{i}: leading/trailing whitespace")
                yield header, line, os.path.basename(fn), i


def build():
    out = defaultdict(list)   # output file -> list of records
    meta = defaultdict(list)  # output file -> list of extra info for checks

    for h, t, fn, i in read_src("heldout_*.txt"):
        label = h[0]
        if label not in FAQ + SMALL + ["request_human"]:
            err(f"{fn}:{i}: bad label {label}")
        out["heldout.jsonl"].append({"text": t, "label": label})

    for h, t, fn, i in read_src("everyday_*.txt"):
        if h != ["out_of_scope"]:
            err(f"{fn}:{i}: bad header {h}")
        out["heldout_everyday.jsonl"].append({"text": t, "label": "out_of_scope"})

    for h, t, fn, i in read_src("complaint_*.txt"):
        if h != ["complaint"]:
            err(f"{fn}:{i}: bad header {h}")
        out["heldout_complaint.jsonl"].append({"text": t, "label": "complaint"})

    for h, t, fn, i in read_src("vague.txt"):
        if h != ["vague"]:
            err(f"{fn}:{i}: bad header {h}")
        m = re.match(r"^\{([^}]*)\} (.+)$", t)
        if not m:
            err(f"{fn}:{i}: vague line must be '{{ids}} text'")
            continue
        topics = [x.strip() for x in m.group(1).split(",") if x.strip()]
        for x in topics:
            if x not in FAQ:
                err(f"{fn}:{i}: unknown topic {x}")
        if len(topics) != len(set(topics)):
            err(f"{fn}:{i}: duplicate topic")
        if topics and not (2 <= len(topics) <= 6):
            err(f"{fn}:{i}: topics must be empty or 2-6 ids")
        out["heldout_vague.jsonl"].append(
            {"text": m.group(2), "label": "vague", "topics": topics})

    for h, t, fn, i in read_src("giveup.txt"):
        if len(h) != 2 or h[0] != "give_up" or h[1] not in ("miss", "not_helpful"):
            err(f"{fn}:{i}: bad header {h}")
            continue
        out["heldout_giveup.jsonl"].append(
            {"text": t, "label": "give_up", "after": h[1]})

    for h, t, fn, i in read_src("foreign.txt"):
        if len(h) != 2 or h[0] != "non_japanese" or h[1] not in ("en", "zh", "ko"):
            err(f"{fn}:{i}: bad header {h}")
            continue
        out["heldout_foreign.jsonl"].append({"text": t, "label": "non_japanese"})
        meta["heldout_foreign.jsonl"].append(h[1])
    return out, meta


def norm(s):
    s = unicodedata.normalize("NFKC", s).lower()
    return "".join(c for c in s
                   if not unicodedata.category(c)[0] in "PSZ" and not c.isspace())


HW_KATA = re.compile(r"[\uff66-\uff9f]")
FW_ALNUM = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
ONLY_HIRA = re.compile(r"^[\u3040-\u309f\u30fc、。！？!?\s〜ー]+$")
EMOJI = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def style_stats(texts):
    n = len(texts)
    c = Counter()
    for t in texts:
        if len(t) >= 60:
            c["60+chars"] += 1
        if HW_KATA.search(t):
            c["halfwidth_kana"] += 1
        if FW_ALNUM.search(t):
            c["fullwidth_alnum"] += 1
        if ONLY_HIRA.match(t):
            c["all_hiragana"] += 1
        if EMOJI.search(t):
            c["emoji"] += 1
    return n, c


def main():
    out, meta = build()
    expected = {
        "heldout.jsonl": 430, "heldout_everyday.jsonl": 600,
        "heldout_complaint.jsonl": 250, "heldout_vague.jsonl": 150,
        "heldout_giveup.jsonl": 110, "heldout_foreign.jsonl": 70,
    }
    for fn, n in expected.items():
        if len(out[fn]) != n:
            err(f"{fn}: {len(out[fn])} records, expected {n}")

    lab = Counter(r["label"] for r in out["heldout.jsonl"])
    for x in FAQ:
        if lab[x] != 22:
            err(f"heldout.jsonl: {x} has {lab[x]}, expected 22")
    for x in SMALL:
        if lab[x] != 8:
            err(f"heldout.jsonl: {x} has {lab[x]}, expected 8")
    if lab["request_human"] != 30:
        err(f"heldout.jsonl: request_human has {lab['request_human']}, expected 30")

    after = Counter(r["after"] for r in out["heldout_giveup.jsonl"])
    if after != Counter({"miss": 60, "not_helpful": 50}):
        err(f"giveup after counts {dict(after)}")
    langs = Counter(meta["heldout_foreign.jsonl"])
    if langs != Counter({"en": 30, "zh": 25, "ko": 15}):
        err(f"foreign language counts {dict(langs)}")

    for r in out["heldout_everyday.jsonl"]:
        if "みらいメンバーズ" in r["text"] or "みらいネット" in r["text"]:
            err(f"everyday mentions the service: {r['text']}")

    # uniqueness across all files
    seen = {}
    for fn, recs in out.items():
        for r in recs:
            k = norm(r["text"])
            if not k:
                err(f"{fn}: empty after normalisation: {r['text']!r}")
            if k in seen:
                err(f"duplicate: {fn}:{r['text']!r} == {seen[k][0]}:{seen[k][1]!r}")
            else:
                seen[k] = (fn, r["text"])

    if errors:
        print("ERRORS:")
        for e in errors:
            print("  " + e)
        sys.exit(1)

    for fn in expected:
        with open(os.path.join(OUT, fn), "w", encoding="utf-8") as f:
            for r in out[fn]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # report
    print("OK — all checks passed; files written.")
    for fn in expected:
        print(f"{fn}: {len(out[fn])}")
    print("heldout labels:", dict(sorted(lab.items())))
    print("giveup after:", dict(after), " foreign langs:", dict(langs))
    tc = Counter(len(r["topics"]) for r in out["heldout_vague.jsonl"])
    print("vague topic-list sizes:", dict(sorted(tc.items())))
    faq_texts = [r["text"] for r in out["heldout.jsonl"] if r["label"] in FAQ]
    groups = {"heldout FAQ part": faq_texts}
    for fn in expected:
        if fn != "heldout.jsonl":
            groups[fn] = [r["text"] for r in out[fn]]
    for g, texts in groups.items():
        n, c = style_stats(texts)
        print(f"{g}: n={n} " + ", ".join(f"{k}={v} ({v/n:.0%})" for k, v in sorted(c.items())))
    long_per = Counter(r["label"] for r in out["heldout.jsonl"]
                       if r["label"] in FAQ and len(r["text"]) >= 60)
    print("60+ per FAQ id:", dict(sorted(long_per.items())))


if __name__ == "__main__":
    main()
