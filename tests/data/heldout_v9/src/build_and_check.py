#!/usr/bin/env python3
"""Copy the hand-written source lists verbatim into JSONL files and run checks.

No text is generated here: every line of src/ is written out unchanged.
Run from anywhere:  python3 src/build_and_check.py
"""
import json
import os
import sys
import unicodedata

SRC = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(SRC)

FAQ_IDS = [
    "change-address", "change-phone", "change-email", "change-name",
    "change-payment", "reset-password", "change-plan", "cancel",
    "hours", "pricing", "contact", "invoice", "payment-methods", "trial",
    "inquiry-status", "feedback",
]
SMALLTALK = ["greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"]

errors = []


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    if not raw.endswith("\n"):
        errors.append(f"{path}: missing final newline")
    lines = raw.split("\n")[:-1] if raw.endswith("\n") else raw.split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            errors.append(f"{path}:{i}: empty line")
        text = line.split("\t")[0] if path.endswith(".tsv") else line
        if text != text.strip():
            errors.append(f"{path}:{i}: leading/trailing whitespace")
    return lines


def write_jsonl(name, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def expect(what, got, want):
    if got != want:
        errors.append(f"{what}: expected {want}, got {got}")


files = {}

# 1. heldout.jsonl
rows = []
for lab in FAQ_IDS:
    lines = read_lines(os.path.join(SRC, "heldout", lab + ".txt"))
    expect(f"heldout/{lab}", len(lines), 22)
    rows += [{"text": t, "label": lab} for t in lines]
for lab in SMALLTALK:
    lines = read_lines(os.path.join(SRC, "heldout", lab + ".txt"))
    expect(f"heldout/{lab}", len(lines), 8)
    rows += [{"text": t, "label": lab} for t in lines]
lines = read_lines(os.path.join(SRC, "heldout", "request_human.txt"))
expect("heldout/request_human", len(lines), 30)
rows += [{"text": t, "label": "request_human"} for t in lines]
expect("heldout.jsonl", len(rows), 430)
files["heldout.jsonl"] = rows

# 2. heldout_everyday.jsonl
rows = []
for part, n in (("sns", 300), ("dialogue", 150), ("monologue", 150)):
    lines = read_lines(os.path.join(SRC, "everyday", part + ".txt"))
    expect(f"everyday/{part}", len(lines), n)
    rows += [{"text": t, "label": "out_of_scope"} for t in lines]
files["heldout_everyday.jsonl"] = rows

# 3. heldout_complaint.jsonl
rows = []
calm = read_lines(os.path.join(SRC, "complaint", "calm.txt"))
harsh = read_lines(os.path.join(SRC, "complaint", "harsh.txt"))
if len(calm) < 120:
    errors.append(f"complaint/calm: need >=120 polite/calm, got {len(calm)}")
rows += [{"text": t, "label": "complaint"} for t in calm + harsh]
expect("heldout_complaint.jsonl", len(rows), 250)
files["heldout_complaint.jsonl"] = rows

# 4. heldout_vague.jsonl
rows = []
for i, line in enumerate(read_lines(os.path.join(SRC, "vague", "vague.tsv")), 1):
    parts = line.split("\t")
    if len(parts) != 2:
        errors.append(f"vague.tsv:{i}: expected 2 tab-separated fields")
        continue
    text, tp = parts
    topics = [x for x in tp.split(",") if x]
    if topics and not (2 <= len(topics) <= 6):
        errors.append(f"vague.tsv:{i}: topics must be [] or 2-6 ids")
    for t in topics:
        if t not in FAQ_IDS:
            errors.append(f"vague.tsv:{i}: unknown topic {t}")
    if len(set(topics)) != len(topics):
        errors.append(f"vague.tsv:{i}: repeated topic")
    rows.append({"text": text, "label": "vague", "topics": topics})
expect("heldout_vague.jsonl", len(rows), 150)
files["heldout_vague.jsonl"] = rows

# 5. heldout_giveup.jsonl
rows = []
for after, n in (("miss", 60), ("not_helpful", 50)):
    lines = read_lines(os.path.join(SRC, "giveup", after + ".txt"))
    expect(f"giveup/{after}", len(lines), n)
    rows += [{"text": t, "label": "give_up", "after": after} for t in lines]
files["heldout_giveup.jsonl"] = rows

# 6. heldout_foreign.jsonl
rows = []
for lang, n in (("en", 30), ("zh", 25), ("ko", 15)):
    lines = read_lines(os.path.join(SRC, "foreign", lang + ".txt"))
    expect(f"foreign/{lang}", len(lines), n)
    rows += [{"text": t, "label": "non_japanese"} for t in lines]
files["heldout_foreign.jsonl"] = rows


# Uniqueness across all files after NFKC + lower + removing punctuation/spaces
def norm(s):
    s = unicodedata.normalize("NFKC", s).lower()
    return "".join(c for c in s
                   if not unicodedata.category(c).startswith(("P", "Z"))
                   and not c.isspace())


seen = {}
for name, rows in files.items():
    for r in rows:
        k = norm(r["text"])
        if not k:
            errors.append(f"{name}: text empty after normalisation: {r['text']!r}")
        if k in seen:
            errors.append(f"duplicate: {r['text']!r} ({name}) ~ {seen[k]}")
        else:
            seen[k] = f"{r['text']!r} ({name})"
        if "\t" in r["text"] or "\n" in r["text"]:
            errors.append(f"{name}: tab/newline in text {r['text']!r}")

# Report counts and long-text shares
print(f"{'file':28s} {'n':>5s} {'60+':>5s} {'share':>6s}")
for name, rows in files.items():
    n = len(rows)
    long_n = sum(len(r["text"]) >= 60 for r in rows)
    print(f"{name:28s} {n:5d} {long_n:5d} {long_n / n:6.1%}")
    if name in ("heldout_everyday.jsonl", "heldout_complaint.jsonl"):
        if not 0.22 <= long_n / n <= 0.30:
            errors.append(f"{name}: 60+ share {long_n / n:.1%} not about 25%")
print(f"complaint calm/polite (no swearing) source lines: {len(calm)}")

if errors:
    print("\nERRORS:")
    for e in errors:
        print("  " + e)
    sys.exit(1)

for name, rows in files.items():
    write_jsonl(name, rows)
print("\nall checks passed; JSONL files written to", OUT)
