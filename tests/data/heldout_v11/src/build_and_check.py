#!/usr/bin/env python3
"""Copy the hand-written lists in src/ verbatim to JSONL files and check them.

No text is generated or altered here: each non-empty, non-comment line of a
source list becomes exactly one JSON object.
"""
import json, os, sys, unicodedata, collections

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)

FAQ = ["change-address", "change-phone", "change-email", "change-name",
       "change-payment", "reset-password", "change-plan", "cancel",
       "hours", "pricing", "contact", "invoice", "payment-methods", "trial",
       "inquiry-status", "feedback"]
SMALL = ["greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"]


def lines(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("# "):
                continue
            yield line


def sectioned(name):
    """'## key' headers; following lines belong to key."""
    key = None
    for line in lines(name):
        if line.startswith("## "):
            key = line[3:].strip()
            continue
        if key is None:
            sys.exit(f"{name}: text before first section: {line}")
        yield key, line


def plain(name):
    for line in lines(name):
        if line.startswith("## "):
            continue
        yield line


def norm(t):
    t = unicodedata.normalize("NFKC", t).lower()
    return "".join(c for c in t if not unicodedata.category(c)[0] in "PZ" and not c.isspace())


errors = []
files = {}

# 1. heldout
rows = [{"text": t, "label": k} for k, t in sectioned("heldout.txt")]
files["heldout.jsonl"] = rows
c = collections.Counter(r["label"] for r in rows)
for k in FAQ:
    if c[k] != 22: errors.append(f"heldout {k}: {c[k]} != 22")
for k in SMALL:
    if c[k] != 8: errors.append(f"heldout {k}: {c[k]} != 8")
if c["request_human"] != 30: errors.append(f"heldout request_human: {c['request_human']} != 30")
extra = set(c) - set(FAQ) - set(SMALL) - {"request_human"}
if extra: errors.append(f"heldout unknown labels {extra}")
if len(rows) != 430: errors.append(f"heldout total {len(rows)} != 430")

# 2. everyday (sections are genre tags, kept out of the JSONL)
ev = list(sectioned("everyday.txt"))
files["heldout_everyday.jsonl"] = [{"text": t, "label": "out_of_scope"} for _, t in ev]
if len(ev) != 600: errors.append(f"everyday total {len(ev)} != 600")
genre = collections.Counter(k for k, _ in ev)

# 3. complaint
cp = list(plain("complaint.txt"))
files["heldout_complaint.jsonl"] = [{"text": t, "label": "complaint"} for t in cp]
if len(cp) != 250: errors.append(f"complaint total {len(cp)} != 250")

# 4. vague: "ids :: text" ("-" = no plausible id)
vg = []
for line in plain("vague.txt"):
    if " :: " not in line:
        errors.append(f"vague bad line: {line}"); continue
    ids, text = line.split(" :: ", 1)
    topics = [] if ids.strip() == "-" else [x.strip() for x in ids.split(",")]
    for x in topics:
        if x not in FAQ: errors.append(f"vague unknown topic {x}: {text}")
    if topics and not (2 <= len(topics) <= 6): errors.append(f"vague topic count {len(topics)}: {text}")
    if len(set(topics)) != len(topics): errors.append(f"vague dup topics: {text}")
    vg.append({"text": text, "label": "vague", "topics": topics})
files["heldout_vague.jsonl"] = vg
if len(vg) != 150: errors.append(f"vague total {len(vg)} != 150")

# 5. giveup
gu = [{"text": t, "label": "give_up", "after": k} for k, t in sectioned("giveup.txt")]
files["heldout_giveup.jsonl"] = gu
gc = collections.Counter(r["after"] for r in gu)
if gc["miss"] != 60 or gc["not_helpful"] != 50 or len(gu) != 110:
    errors.append(f"giveup counts {dict(gc)}")

# 6. foreign
fo = list(sectioned("foreign.txt"))
files["heldout_foreign.jsonl"] = [{"text": t, "label": "non_japanese"} for _, t in fo]
fc = collections.Counter(k for k, _ in fo)
if fc != collections.Counter({"en": 30, "zh": 25, "ko": 15}): errors.append(f"foreign counts {dict(fc)}")

# checks across files
seen = {}
for fname, rs in files.items():
    for r in rs:
        t = r["text"]
        if t != t.strip() or "\t" in t or "::" in t: errors.append(f"{fname} whitespace/sep: {t}")
        if len(t) < 2: errors.append(f"{fname} too short: {t}")
        n = norm(t)
        if n in seen:
            errors.append(f"duplicate: {t!r} ({fname}) ~ {seen[n][1]!r} ({seen[n][0]})")
        else:
            seen[n] = (fname, t)

def share(ts):
    ts = list(ts)
    return sum(len(t) >= 60 for t in ts), len(ts)

report = []
faq_texts = [r["text"] for r in files["heldout.jsonl"] if r["label"] in FAQ]
report.append(("heldout FAQ 60+", share(faq_texts)))
for k in FAQ:
    report.append((f"  {k} 60+", share(r["text"] for r in files["heldout.jsonl"] if r["label"] == k)))
report.append(("everyday 60+", share(t for _, t in ev)))
report.append(("complaint 60+", share(cp)))
report.append(("vague 60+", share(r["text"] for r in vg)))
report.append(("giveup 60+", share(r["text"] for r in gu)))
for name, (a, b) in report:
    print(f"{name}: {a}/{b} = {a/b:.0%}" if b else f"{name}: 0")
print("everyday genres:", dict(genre))
print("giveup:", dict(gc), "foreign:", dict(fc))
a, b = share(faq_texts)
if not 0.22 <= a / b <= 0.32: errors.append(f"heldout FAQ 60+ share {a}/{b}")
for nm in ("everyday", "complaint"):
    src = [t for _, t in ev] if nm == "everyday" else cp
    a, b = share(src)
    if b and not 0.22 <= a / b <= 0.35: errors.append(f"{nm} 60+ share {a}/{b}")

if "--check-only" not in sys.argv:
    for fname, rs in files.items():
        with open(os.path.join(OUT, fname), "w", encoding="utf-8") as f:
            for r in rs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("wrote", ", ".join(f"{k}={len(v)}" for k, v in files.items()))

if errors:
    print("\nERRORS:")
    for e in errors: print(" ", e)
    sys.exit(1)
print("all checks passed")
