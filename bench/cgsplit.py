"""Inclusive instruction counts by function from a callgrind dump, for the
bench scripts that split a query's cost by component (bench/callgrind-wake,
bench/wake/run).

    python3 bench/cgsplit.py DUMP N NAME=REGEX[~REGEX...] ...

prints, per NAME, the inclusive count of the function whose name matches
REGEX (the largest such function, so that a closure nested in its parent is
not counted twice) divided by N, less each ~REGEX's; `total` is the
program's total; `#REGEX` the calls made to the functions matching REGEX. `REGEX@CALLER` counts only the calls made from functions
matching CALLER. Inlined code is counted in the function it was inlined
into, whatever its source file (callgrind_annotate splits it by file)."""
import re
import sys


def load(path):
    names, incl, edges, calls = {}, {}, {}, {}
    total, cur, callee, call_next = 0, None, None, False
    for line in open(path, errors="replace"):
        c = line[0]
        if c.isdigit() or c in "+-*":
            v = int(line.split()[-1])
            if call_next:
                edges[(cur, callee)] = edges.get((cur, callee), 0) + v
                call_next = False
            incl[cur] = incl.get(cur, 0) + v
        elif line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if not m:
                continue
            if m.group(2) is not None:
                names[m.group(1)] = m.group(2)
            if c == "f":
                cur = names.get(m.group(1))
            else:
                callee = names.get(m.group(1))
        elif line.startswith("calls="):
            call_next = True
            calls[callee] = calls.get(callee, 0) + int(line[6:].split()[0])
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, incl, edges, calls


def count(data, spec):
    total, incl, edges, calls = data
    if spec == "total":
        return total
    if spec.startswith("#"):
        return sum(v for k, v in calls.items() if k and re.search(spec[1:], k))
    if "@" in spec:
        callee, caller = spec.split("@", 1)
        return sum(v for (a, b), v in edges.items()
                   if a and b and re.search(caller, a) and re.search(callee, b))
    return max((v for k, v in incl.items() if k and re.search(spec, k)), default=0)


def split(path, n, specs):
    data = load(path)
    out = {}
    for item in specs:
        name, expr = item.split("=", 1)
        plus, *minus = expr.split("~")
        v = count(data, plus) - sum(count(data, m) for m in minus)
        out[name] = v / max(n, 1)
    return out


if __name__ == "__main__":
    got = split(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
    print(" ".join(f"{k} {v:,.2f}" if abs(v) < 100 else f"{k} {v:,.0f}" for k, v in got.items()))
