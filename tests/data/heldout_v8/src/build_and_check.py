"""Convert the hand-written lists in src/ to JSONL and check counts, lengths and uniqueness.
No text is generated here; every line comes verbatim from the .txt lists."""
import json, os, sys, unicodedata, re, collections
SRC = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(SRC)
def lines(p):
    p = os.path.join(SRC, p)
    if not os.path.exists(p): return []
    return [l.rstrip('\n') for l in open(p, encoding='utf-8') if l.strip()]
def norm(t):
    t = unicodedata.normalize('NFKC', t).lower()
    return ''.join(c for c in t if not (unicodedata.category(c)[0] in 'PSZC'))
files = {}
FAQ = ['change-address','change-phone','change-email','change-name','change-payment','reset-password','change-plan','cancel','hours','pricing','contact','invoice','payment-methods','trial','inquiry-status','feedback']
EXP = {**{k:20 for k in FAQ}, 'request_human':40, **{k:8 for k in ['greet','goodbye','thanks','affirm','deny','bot_challenge']}}
rows = []
for lab, n in EXP.items():
    ls = lines(f'heldout/{lab}.txt')
    if len(ls) != n: print('COUNT', lab, len(ls), 'expected', n)
    rows += [{'text': t, 'label': lab} for t in ls]
files['heldout.jsonl'] = (rows, 408)
files['heldout_everyday.jsonl'] = ([{'text': t, 'label': 'out_of_scope'} for t in lines('everyday.txt')], 600)
files['heldout_complaint.jsonl'] = ([{'text': t, 'label': 'complaint'} for t in lines('complaint.txt')], 250)
rows = []
for l in lines('vague.txt'):
    tp, t = l.split('|', 1)
    topics = [x for x in tp.split(',') if x]
    assert all(x in FAQ for x in topics), l
    assert len(topics) == 0 or 2 <= len(topics) <= 6, l
    rows.append({'text': t, 'label': 'vague', 'topics': topics})
files['heldout_vague.jsonl'] = (rows, 150)
rows = []
for a, n in [('miss', 60), ('not_helpful', 50)]:
    ls = lines(f'giveup_{a}.txt')
    if len(ls) != n: print('COUNT giveup', a, len(ls))
    rows += [{'text': t, 'label': 'give_up', 'after': a} for t in ls]
files['heldout_giveup.jsonl'] = (rows, 110)
rows = []
for lg, n in [('en', 40), ('zh', 15), ('ko', 15)]:
    ls = lines(f'foreign_{lg}.txt')
    if len(ls) != n: print('COUNT foreign', lg, len(ls))
    rows += [{'text': t, 'label': 'non_japanese', 'lang': lg} for t in ls]
files['heldout_foreign.jsonl'] = (rows, 70)
seen = {}
dup = 0
for fn, (rows, n) in files.items():
    long_ = sum(len(r['text']) >= 60 for r in rows)
    print(f'{fn}: {len(rows)}/{n} lines, 60+ chars: {long_} ({long_/max(1,len(rows)):.0%})')
    for r in rows:
        k = norm(r['text'])
        if not k: print('EMPTY', fn, r); dup += 1
        if k in seen: print('DUP', fn, r['text'], '<->', seen[k]); dup += 1
        seen[k] = (fn, r['text'])
if '--write' in sys.argv:
    for fn, (rows, n) in files.items():
        assert len(rows) == n, fn
        with open(os.path.join(OUT, fn), 'w', encoding='utf-8') as f:
            for r in rows: f.write(json.dumps(r, ensure_ascii=False) + '\n')
    print('written')
print('dups', dup)
