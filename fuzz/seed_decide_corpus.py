#!/usr/bin/env python3
"""Writes a starting corpus for the `decide` fuzz target: one (desired, phase, observation)
triple per record of the committed traces, and of any trace files given as arguments (e.g.
the trace.jsonl the node-loss benchmark keeps for a failed run), so libFuzzer mutates real
observations instead of guessing JSON from nothing.

    python3 fuzz/seed_decide_corpus.py fuzz/corpus/decide [TRACE.jsonl ...]
"""
import glob, json, os, sys

def main():
    if len(sys.argv) < 2:
        sys.exit("usage: seed_decide_corpus.py OUT_DIR [TRACE.jsonl ...]")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    traces = sorted(glob.glob(os.path.join(here, "..", "examples", "traces", "*.jsonl")))
    traces += sys.argv[2:]
    n = 0
    for path in traces:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                triple = [r["spec"], r.get("phaseHint", "Pending"), r["observation"]]
                with open(os.path.join(out, f"seed-{n:05d}.json"), "w") as o:
                    json.dump(triple, o)
                n += 1
    print(f"{n} seeds in {out}")

if __name__ == "__main__":
    main()
