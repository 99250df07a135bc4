#!/usr/bin/env python3
"""Check /tmp/w8/texts.jsonl: JSON validity, labels, counts, uniqueness."""
import json, sys, unicodedata, re, collections

PATH = sys.argv[1] if len(sys.argv) > 1 else "/tmp/w8/texts.jsonl"
FAQ = ["change-address", "change-phone", "change-email", "change-name",
       "change-payment", "reset-password", "change-plan", "cancel", "hours",
       "pricing", "contact", "invoice", "payment-methods", "trial",
       "inquiry-status", "feedback"]
LABELS = set(FAQ) | {"complaint"}

def norm(s):
    s = unicodedata.normalize("NFKC", s).lower()
    # drop whitespace, punctuation and symbols
    return "".join(ch for ch in s
                   if not ch.isspace()
                   and not unicodedata.category(ch).startswith(("P", "S")))

errors = []
rows = []
with open(PATH, encoding="utf-8") as f:
    for i, line in enumerate(f, 1):
        try:
            obj = json.loads(line)
        except Exception as e:
            errors.append(f"line {i}: invalid JSON ({e})"); continue
        if set(obj) != {"text", "label"}:
            errors.append(f"line {i}: keys {sorted(obj)}")
        if not isinstance(obj.get("text"), str) or not obj["text"].strip():
            errors.append(f"line {i}: empty/non-string text")
        if obj.get("label") not in LABELS:
            errors.append(f"line {i}: bad label {obj.get('label')!r}")
        rows.append((i, obj))

counts = collections.Counter(o.get("label") for _, o in rows)
faq_total = sum(counts[l] for l in FAQ)
if len(rows) != 700: errors.append(f"total {len(rows)} != 700")
if counts["complaint"] != 450: errors.append(f"complaint {counts['complaint']} != 450")
if faq_total != 250: errors.append(f"FAQ total {faq_total} != 250")
for l in FAQ:
    if not 13 <= counts[l] <= 17:
        errors.append(f"{l}: {counts[l]} (expected ~15)")

seen = {}
for i, o in rows:
    k = norm(o.get("text", ""))
    if k in seen:
        errors.append(f"line {i}: duplicate of line {seen[k]}")
    else:
        seen[k] = i

def long_share(lab_filter):
    t = [o["text"] for _, o in rows if lab_filter(o["label"])]
    return sum(len(x) >= 60 for x in t), len(t)

print("counts:", dict(sorted(counts.items())))
print("complaint 60+ chars: %d/%d" % long_share(lambda l: l == "complaint"))
print("FAQ 60+ chars:       %d/%d" % long_share(lambda l: l in FAQ))
if errors:
    print("ERRORS:"); [print(" ", e) for e in errors]; sys.exit(1)
print("OK")
