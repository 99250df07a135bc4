#!/usr/bin/env python3
"""Copy the hand-written lists in src/ verbatim to JSONL and run checks.

Only conversion and checking happens here; every text comes from the
hand-written .txt lists (one text per line, '# section' headers).
"""
import json, os, re, sys, unicodedata
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
FAQ = ["change-address", "change-phone", "change-email", "change-name",
       "change-payment", "reset-password", "change-plan", "cancel", "hours",
       "pricing", "contact", "invoice", "payment-methods", "trial",
       "inquiry-status", "feedback"]
SMALL = ["greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"]
LONG = 60
errors = []


def read_sections(name):
    """Return list of (section, line) pairs from a hand-written list."""
    sec, rows = None, []
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("# "):
                sec = line[2:].strip()
                continue
            if line != line.strip():
                errors.append(f"{name}: leading/trailing space: {line!r}")
            if "\t" in line:
                errors.append(f"{name}: tab in line: {line!r}")
            rows.append((sec, line))
    return rows


def norm(t):
    t = unicodedata.normalize("NFKC", t).lower()
    return "".join(ch for ch in t
                   if not (unicodedata.category(ch)[0] in "PZ" or ch.isspace()
                           or unicodedata.category(ch) in ("So", "Sk", "Sm", "Sc")))


def share_long(texts):
    return sum(len(t) >= LONG for t in texts) / max(1, len(texts))


def write(fname, objs):
    with open(os.path.join(OUT, fname), "w", encoding="utf-8") as f:
        for o in objs:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


def expect(cond, msg):
    if not cond:
        errors.append(msg)


# 1. heldout.jsonl
rows = read_sections("heldout.txt")
ho = [{"text": t, "label": s} for s, t in rows]
c = Counter(o["label"] for o in ho)
for k in FAQ:
    expect(c[k] == 22, f"heldout: {k} has {c[k]} (want 22)")
for k in SMALL:
    expect(c[k] == 8, f"heldout: {k} has {c[k]} (want 8)")
expect(c["request_human"] == 30, f"heldout: request_human {c['request_human']}")
expect(set(c) == set(FAQ + SMALL + ["request_human"]), f"heldout: labels {set(c)}")
expect(len(ho) == 430, f"heldout total {len(ho)}")
faq_texts = [o["text"] for o in ho if o["label"] in FAQ]
per_id_long = {k: sum(len(o["text"]) >= LONG for o in ho if o["label"] == k) for k in FAQ}
expect(share_long(faq_texts) >= 0.25, f"heldout FAQ 60+ share {share_long(faq_texts):.3f}")
write("heldout.jsonl", ho)

# 2. everyday
rows = read_sections("everyday.txt")
ev = [{"text": t, "label": "out_of_scope"} for s, t in rows]
ev_sec = Counter(s for s, _ in rows)
expect(len(ev) == 600, f"everyday total {len(ev)}")
expect(share_long([o["text"] for o in ev]) >= 0.25, f"everyday 60+ {share_long([o['text'] for o in ev]):.3f}")
write("heldout_everyday.jsonl", ev)

# 3. complaint
rows = read_sections("complaint.txt")
co = [{"text": t, "label": "complaint"} for s, t in rows]
co_sec = Counter(s for s, _ in rows)
expect(len(co) == 250, f"complaint total {len(co)}")
expect(co_sec["polite"] >= 120, f"complaint polite {co_sec['polite']}")
expect(share_long([o["text"] for o in co]) >= 0.25, f"complaint 60+ {share_long([o['text'] for o in co]):.3f}")
write("heldout_complaint.jsonl", co)

# 4. vague:  "id,id,... :: text"  or  "- :: text"
rows = read_sections("vague.txt")
va = []
for s, line in rows:
    if " :: " not in line:
        errors.append(f"vague: missing separator: {line}")
        continue
    tp, text = line.split(" :: ", 1)
    topics = [] if tp.strip() == "-" else [x.strip() for x in tp.split(",")]
    for x in topics:
        expect(x in FAQ, f"vague: bad topic {x} in {line}")
    expect(len(topics) == 0 or 2 <= len(topics) <= 6, f"vague: topic count {line}")
    expect(len(set(topics)) == len(topics), f"vague: dup topic {line}")
    va.append({"text": text, "label": "vague", "topics": topics})
expect(len(va) == 150, f"vague total {len(va)}")
write("heldout_vague.jsonl", va)

# 5. giveup
rows = read_sections("giveup.txt")
gu = [{"text": t, "label": "give_up", "after": s} for s, t in rows]
g = Counter(o["after"] for o in gu)
expect(g["miss"] == 60 and g["not_helpful"] == 50 and len(gu) == 110, f"giveup {g}")
write("heldout_giveup.jsonl", gu)

# 6. foreign
rows = read_sections("foreign.txt")
fo = [{"text": t, "label": "non_japanese"} for s, t in rows]
f_sec = Counter(s for s, _ in rows)
expect(f_sec == Counter({"en": 30, "zh": 25, "ko": 15}), f"foreign {f_sec}")
write("heldout_foreign.jsonl", fo)

# uniqueness across all files
seen = defaultdict(list)
for fname, objs in [("heldout", ho), ("everyday", ev), ("complaint", co),
                    ("vague", va), ("giveup", gu), ("foreign", fo)]:
    for o in objs:
        n = norm(o["text"])
        expect(n != "", f"{fname}: empty after normalisation: {o['text']}")
        seen[n].append((fname, o["text"]))
for n, v in seen.items():
    if len(v) > 1:
        errors.append(f"duplicate after normalisation: {v}")

# report
print("heldout:", len(ho), dict(c))
print("  FAQ 60+ share: %.3f  per id: %s" % (share_long(faq_texts), per_id_long))
print("everyday:", len(ev), dict(ev_sec), "60+ %.3f" % share_long([o["text"] for o in ev]))
print("complaint:", len(co), dict(co_sec), "60+ %.3f" % share_long([o["text"] for o in co]))
print("vague:", len(va), "with topics:", sum(bool(o["topics"]) for o in va),
      "empty:", sum(not o["topics"] for o in va))
print("giveup:", len(gu), dict(g))
print("foreign:", len(fo), dict(f_sec))
if errors:
    print("\nERRORS (%d):" % len(errors))
    for e in errors:
        print(" -", e)
    sys.exit(1)
print("\nALL CHECKS PASSED")
