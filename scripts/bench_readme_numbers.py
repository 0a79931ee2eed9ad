"""README numbers from a committed bench run (default results/bench_h200.jsonl), through backend/bench/analysis.py:

    .venv/bin/python scripts/bench_readme_numbers.py [results/bench_h200.jsonl]
"""
import json, os, sys, tempfile
os.environ["SSM_ARENA_DB"] = os.path.join(tempfile.mkdtemp(), "a.duckdb")
sys.path.insert(0, ".")
from store import open_store
from backend.bench import analysis as A

F = sys.argv[1] if len(sys.argv) > 1 else "results/bench_h200.jsonl"
st = open_store(os.environ["SSM_ARENA_DB"]); st.import_jsonl(F)
run = st.runs(kind="bench").iloc[0]; m = st.measurements(kinds="bench", expand_extra=True)
meta, cfg, summ = run["meta"], run["config"], run["summary"]
PTS = m[m.metric == "point"]
print(f"run {run['name']} status {run['status']}; {meta['device_name']}; git {meta['git_sha'][:7]}; torch {meta['torch']}, "
      f"triton {meta['triton']}, transformers {meta['transformers']}, cuda {meta['cuda']}; dtype {cfg['dtype_resolved']}; "
      f"budget_s {cfg['budget_s']}; elapsed {summ['elapsed_s']} s; points (counted from the rows) {len(PTS)} ok {(PTS.status == 'ok').sum()} "
      f"oom {(PTS.status == 'oom').sum()} errors {(PTS.status == 'error').sum()}")
for x in summ["not_run"]: print("  not run:", x)
W = {r["model"]: r.get("weights") for _, r in m.iterrows()}
def at(model, y, L):
    c = A.curve(m, model, y); v = c[c["prompt_tokens"] == L][y]
    return None if v.empty else float(v.iloc[0])
def f(v, fmt):
    return "—" if v is None else format(v, fmt)
print("\n| model (weights, path) | decode tok/s b1 @512 | @32,768 | TPOT @512 | TPOT @32,768 | prefill @512 | prefill @32,768 | largest batch measured (why the sweep stopped) | paper setting e2e tok/s | decode-only tok/s |")
print("|---|---|---|---|---|---|---|---|---|---|")
seen = set()
for ssm, tf in A.pairs_in(m):
    r = A.paper_ratio(m, ssm, tf)
    for side, model in (("ssm", ssm), ("tf", tf)):
        if model in seen: continue
        seen.add(model); v = r[side]
        print(f"| {model} ({W[model]}, `{v['path']}`) | {f(at(model,'decode_tok_s',512),',.0f')} | {f(at(model,'decode_tok_s',32768),',.0f')} | "
              f"{f(at(model,'tpot_ms',512),'.3f')} ms | {f(at(model,'tpot_ms',32768),'.3f')} ms | {f(at(model,'prefill_ms',512),'.1f')} ms | "
              f"{f(at(model,'prefill_ms',32768),'.1f')} ms | {v['batch']} ({v['stopped_by']}) | {v['e2e_tok_s']:,.0f} | {v['decode_tok_s_batch']:,.0f} |")
print()
for ssm, tf in A.pairs_in(m):
    r = A.paper_ratio(m, ssm, tf)
    verdict = "holds" if r["ratio"] >= A.CLAIM_LOW else "does not hold"
    line = [f"{ssm} / {tf}: e2e {A.fmt_ratio(r['ratio'])} at batch {r['ssm']['batch']} vs {r['tf']['batch']}, decode-only {A.fmt_ratio(r['decode_ratio'])}; 4-5x claim {verdict}"]
    for y in ("tpot_ms", "prefill_ms"):
        c = A.crossover(A.curve(m, ssm, y), A.curve(m, tf, y), y)
        x = "" if c["x"] is None else f" x={c['x']:,.0f}"
        line.append(f"{y} crossover {c['kind']}{x} (common max {c['max_x']:,}; {ssm} {c['ssm_at_max']:.3g} vs {tf} {c['tf_at_max']:.3g} ms there)")
    print("- " + "; ".join(line))
def batch_rows(model):  # the batch sweep's points that ran (not the out-of-memory one)
    return m[(m.model == model) & (m.metric == "point") & (m.phase == "batch") & (m.status == "ok")].sort_values("batch")
models = sorted(set(m.model))
for model in models:
    pk = batch_rows(model).iloc[-1]
    p32 = at(model, "peak_mem_bytes", 32768); c32 = at(model, "cache_bytes", 32768); c512 = at(model, "cache_bytes", 512)
    print(f"  {model}: peak at paper setting batch {int(pk['batch'])} {pk['peak_mem_bytes']/2**30:.2f} GiB, prefill {pk['prefill_ms']/1e3:.2f} s, "
          f"TPOT {pk['tpot_ms']:.2f} ms; b1 peak @32k {f(None if p32 is None else p32/2**30, '.2f')} GiB; cache @512 {f(None if c512 is None else c512/2**20,'.2f')} MiB, @32k {f(None if c32 is None else c32/2**20,'.2f')} MiB")
for model in models:
    b = batch_rows(model)
    print(f"  {model} batch-sweep TPOT: batch {int(b.batch.iloc[0])} {b.tpot_ms.iloc[0]:.2f} ms -> batch {int(b.batch.iloc[-1])} {b.tpot_ms.iloc[-1]:.2f} ms")
