#!/usr/bin/env bash
# layers.sh - every #include "x.h" in src/ is allowed by the order in src/LAYERS.md:
# a file may include its own module, lower ranks, and its own rank at ranks 0 and 6;
# include/buddyslab.h only at rank 6. One case per file; a file whose module is not in
# the table fails too (the table must name every module). Also: opt has one writer, and
# no file over 600 lines or function over 60.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
python3 - "$top" <<'PY'
import os, re, sys
top = sys.argv[1]
rank = {}
for line in open(os.path.join(top, "src/LAYERS.md")):
    m = re.match(r"\|\s*(\d+)\s*\|\s*([a-z_ ]+?)\s*\|", line)
    if m:
        for mod in m.group(2).split():
            rank[mod] = int(m.group(1))
part_of = {}   # extra .c files of a module: "- `x.c` is part of module `m`"
for line in open(os.path.join(top, "src/LAYERS.md")):
    m = re.match(r"- `([a-z_]+)\.c` is part of module `([a-z_]+)`", line)
    if m:
        part_of[m.group(1)] = m.group(2)
if not rank:
    print("FAIL layers_table: no rank table in src/LAYERS.md"); sys.exit(0)
top_rank = max(rank.values())
for f in sorted(os.listdir(os.path.join(top, "src"))):
    if not f.endswith((".c", ".h")):
        continue
    mod = f.rsplit(".", 1)[0]
    if f.endswith(".c") and part_of.get(mod) in rank:
        mod = part_of[mod]
    if mod not in rank:
        print(f"FAIL layers_{f}: module {mod} is not in src/LAYERS.md"); continue
    r, bad = rank[mod], []
    for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)\.h"', open(os.path.join(top, "src", f)).read(), re.M):
        if inc == "buddyslab":
            if r != top_rank: bad.append(f"{inc}.h (the public header, rank {top_rank} only)")
            continue
        if inc not in rank:
            bad.append(f"{inc}.h (not in the table)"); continue
        q = rank[inc]
        if inc == mod or q < r or (q == r and r in (0, top_rank)):
            continue
        bad.append(f"{inc}.h (rank {q} from rank {r})")
    print(f"PASS layers_{f}" if not bad else f"FAIL layers_{f}: includes " + ", ".join(bad))
# opt has one writer: config.c (config.h's setters); any other assignment to a field fails.
writes = []
for f in sorted(os.listdir(os.path.join(top, "src"))):
    if f.endswith((".c", ".h")) and f not in ("config.c", "config.h"):
        for n, line in enumerate(open(os.path.join(top, "src", f)), 1):
            code = line.split("//")[0].split("/*")[0]
            if re.search(r"\bopt\.[a-z_]+(\[[^]]*\])?\s*([-+*/&|^]|<<|>>)?=(?!=)", code) or \
               re.search(r"(\+\+|--)\s*opt\.[a-z_]+|\bopt\.[a-z_]+\s*(\+\+|--)", code):
                writes.append(f"{f}:{n}")
print("PASS layers_opt_writers" if not writes else
      "FAIL layers_opt_writers: opt written outside config.c at " + ", ".join(writes))
# Sizes a reader can hold: every file of src/ under 600 lines, every function
# (a body from a "{" to a "}" in column 0) under 60.
big = []
for f in sorted(os.listdir(os.path.join(top, "src"))):
    if not f.endswith((".c", ".h")):
        continue
    lines = open(os.path.join(top, "src", f)).read().split("\n")
    if len(lines) > 600:
        big.append(f"{f} has {len(lines)} lines")
    start = None
    for n, line in enumerate(lines):
        if line.startswith("{") and start is None:
            start = n
        elif line.startswith("}") and start is not None:
            if n - start + 1 > 60:
                head = next((lines[k] for k in range(start - 1, -1, -1) if "(" in lines[k]), "?")
                big.append(f"{f}:{start} a {n - start + 1}-line function ({head.strip()[:50]})")
            start = None
print("PASS layers_sizes" if not big else "FAIL layers_sizes: " + "; ".join(big))
PY
