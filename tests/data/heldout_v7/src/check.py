import json, collections, unicodedata, sys
D='/work/v7_draft/'
def norm(t):
    t=unicodedata.normalize('NFKC',t).lower()
    return ''.join(c for c in t if unicodedata.category(c)[0] in 'LN')
ids="change-address change-phone change-email change-name change-payment reset-password change-plan cancel hours pricing contact invoice payment-methods trial inquiry-status feedback".split()
exp={'heldout.jsonl':408,'heldout_everyday.jsonl':600,'heldout_complaint.jsonl':250,'heldout_vague.jsonl':150,'heldout_giveup.jsonl':110,'heldout_foreign.jsonl':70}
seen={}; ok=True
for fn,n in exp.items():
    recs=[json.loads(l) for l in open(D+fn,encoding='utf-8')]
    raw=open(D+fn,encoding='utf-8').read()
    assert '\\u' not in raw, fn
    c=collections.Counter(r['label'] for r in recs)
    extra=collections.Counter(r.get('after') or r.get('lang') for r in recs if 'after' in r or 'lang' in r)
    longn=sum(len(r['text'])>=60 for r in recs)
    print(fn,len(recs),'ok' if len(recs)==n else 'BAD', dict(c) if len(c)<30 else '', dict(extra) if extra else '', f'long={longn} ({longn/len(recs):.0%})')
    if len(recs)!=n: ok=False
    for r in recs:
        t=r['text']
        if t!=t.strip() or not t or '\n' in t: print('WS',fn,t); ok=False
        k=norm(t)
        if not k: print('EMPTYNORM',fn,t); ok=False
        if k in seen: print('DUP',fn,t,'||',seen[k]); ok=False
        seen[k]=(fn,t)
        if fn=='heldout_vague.jsonl':
            tp=r['topics']
            if tp and (not 2<=len(tp)<=6 or any(x not in ids for x in tp) or len(set(tp))!=len(tp)): print('TOP',r); ok=False
    if fn=='heldout.jsonl':
        want={**{i:20 for i in ids},'request_human':40,**{x:8 for x in 'greet goodbye thanks affirm deny bot_challenge'.split()}}
        if dict(c)!=want: print('LABELS BAD'); ok=False
print('ALL OK' if ok else 'PROBLEMS')
