import json, glob, collections, sys
sys.path.insert(0,'.')
from build import parse, norm
OUT='/work/v7_draft/'
def dump(name, recs):
    with open(OUT+name,'w',encoding='utf-8') as f:
        for r in recs: f.write(json.dumps(r,ensure_ascii=False)+'\n')
files={}
files['heldout.jsonl']=[{"text":t,"label":l} for l,t in parse('heldout_a.txt')+parse('heldout_b.txt')]
ev=[l.strip() for fn in sorted(glob.glob('everyday_*.txt')) for l in open(fn,encoding='utf-8') if l.strip()]
files['heldout_everyday.jsonl']=[{"text":t,"label":"out_of_scope"} for t in ev]
files['heldout_complaint.jsonl']=[{"text":t,"label":"complaint"} for fn in sorted(glob.glob('complaint_*.txt')) for _,t in parse(fn)]
vg=[]
for ln in open('vague.txt',encoding='utf-8'):
    ln=ln.rstrip('\n')
    if not ln: continue
    tp,txt=ln.split('|',1)
    vg.append({"text":txt,"label":"vague","topics":[x for x in tp.split(',') if x]})
files['heldout_vague.jsonl']=vg
files['heldout_giveup.jsonl']=[{"text":t,"label":"give_up","after":l} for l,t in parse('giveup.txt')]
files['heldout_foreign.jsonl']=[{"text":t,"label":"non_japanese","lang":l} for l,t in parse('foreign.txt')]
for k,v in files.items(): dump(k,v)
