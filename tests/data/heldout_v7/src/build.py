import json, sys, unicodedata, re, collections
def parse(path):
    out=[]; cur=None
    for ln in open(path,encoding='utf-8'):
        ln=ln.rstrip('\n')
        if not ln.strip(): continue
        if ln.startswith('## '): cur=ln[3:].strip(); continue
        out.append((cur,ln.strip()))
    return out
def norm(t):
    t=unicodedata.normalize('NFKC',t).lower()
    return ''.join(c for c in t if unicodedata.category(c)[0] in 'LN')
