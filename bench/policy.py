"""The traffic-policy section of bench/run (issue 37's benchmarks), for bench.py.

  policy-gen DIR [--rules N] [--flood N] [--names N] [--seed S]   (a bench.py subcommand)
      DIR/rules.toml    N [[ls.rule]] on suffixes no query asks (blockedK.bench.test,
                        action nxdomain) after 10 [[ls.dynamic_block]] that never trip
      DIR/rules.lua     the same for dnsdist: 10 dynBlockRulesGroup rules, N
                        addAction(SuffixMatchNodeRule(...), RCodeAction(DNSRCode.NXDOMAIN))
      DIR/rules-one.lua the same, the N suffixes in one SuffixMatchNodeRule
      DIR/flood.txt     N distinct random names under victim.bench.test (dnsperf input)
      DIR/normal.txt    the zone's real names (hostK.bench.test A), shuffled
  server-latency PCAP PORT   (a bench.py subcommand) the normal client's latency at the
                             server, from a capture of its port on lo
  lines(rows, series, Line, ge, le)   the section's ratio lines.
  TITLES                              the section's detail-table titles.
"""
import os
import random
import statistics

ORIGIN = "bench.test"
# The zone the random-subdomain flood aims at: a name under the bench's zone
# that the TS does not have (every flood query is NXDOMAIN, as in the wild).
VICTIM = "victim." + ORIGIN
# Thresholds no benchmark load reaches: the rules count, never block.
NEVER = 10_000_000

# (kind, extra TOML keys, dnsdist call) of the 10 dynamic-block rules of part (a).
DYNBLOCKS = [
    ("query-rate", 'window_s = 10', f"dbr:setQueryRate({NEVER}, 10, 'q10', 60)"),
    ("query-rate", 'window_s = 5', f"dbr:setQueryRate({NEVER}, 5, 'q5', 60)"),
    ("query-rate", 'window_s = 1', f"dbr:setQueryRate({NEVER}, 1, 'q1', 60)"),
    ("rcode-rate", 'rcode = "NXDOMAIN"',
     f"dbr:setRCodeRate(DNSRCode.NXDOMAIN, {NEVER}, 10, 'nx', 60)"),
    ("rcode-rate", 'rcode = "SERVFAIL"',
     f"dbr:setRCodeRate(DNSRCode.SERVFAIL, {NEVER}, 10, 'sf', 60)"),
    ("rcode-ratio", 'rcode = "SERVFAIL"\nmin_responses = 1000',
     "dbr:setRCodeRatio(DNSRCode.SERVFAIL, 0.99, 10, 'sfr', 60, 1000)"),
    ("qtype-rate", 'qtype = "ANY"', f"dbr:setQTypeRate(DNSQType.ANY, {NEVER}, 10, 'any', 60)"),
    ("qtype-rate", 'qtype = "TXT"', f"dbr:setQTypeRate(DNSQType.TXT, {NEVER}, 10, 'txt', 60)"),
    ("response-bytes-rate", '', f"dbr:setResponseByteRate({NEVER * 100}, 10, 'bytes', 60)"),
    ("name-rate", 'suffix = "test"',
     f"dbr:setSuffixMatchRule(10, 'names', 60, DNSAction.Drop, name_rate('test.', 2, {NEVER}, 10))"),
]

# A Lua visitor for setSuffixMatchRule that does what the LS's name-rate does:
# the names one label under SUFFIX (LABELS labels), their queries and their
# children's over the window, against the threshold per second.
NAME_RATE_LUA = """-- setSuffixMatchRule's visitor, as the LS's name-rate: a name one label under
-- `suffix` (`labels` labels) over `rate` queries/s (its own and its children's).
function name_rate(suffix, labels, rate, seconds)
  return function(node, self, children)
    local name = node.fullname
    return node.labelsCount == labels
      and name:sub(-#suffix - 1) == "." .. suffix
      and (self.queries + children.queries) >= rate * seconds
  end
end"""


def threshold_of(kind):
    return 0.99 if kind == "rcode-ratio" else (NEVER * 100 if kind == "response-bytes-rate"
                                               else NEVER)


def cmd_policy_gen(a):
    os.makedirs(a.dir, exist_ok=True)
    with open(os.path.join(a.dir, "rules.toml"), "w") as f:
        f.write(f"# {len(DYNBLOCKS)} dynamic blocks that never trip, then {a.rules} query rules "
                "on suffixes no query asks (bench/policy.py)\n")
        for i, (kind, extra, _) in enumerate(DYNBLOCKS):
            f.write(f'\n[[ls.dynamic_block]]\nname = "never-{i}"\nkind = "{kind}"\n'
                    f'threshold = {threshold_of(kind)}\nblock_s = 60\n')
            if extra:
                f.write(extra + "\n")
        for i in range(a.rules):
            f.write(f'\n[[ls.rule]]\nname = "blocked-{i}"\n'
                    f'match = {{ suffix = ["blocked{i}.{ORIGIN}"] }}\naction = "nxdomain"\n')
    def lua_head(f, what):
        f.write(f"-- {len(DYNBLOCKS)} dynamic block rules that never trip, then {what} "
                "no query matches (bench/policy.py)\n")
        f.write(NAME_RATE_LUA + "\n")
        f.write("local dbr = dynBlockRulesGroup()\n")
        for _, _, call in DYNBLOCKS:
            f.write(call + "\n")
        f.write("function maintenance() dbr:apply() end\n")

    # One rule per suffix, as the LS's: dnsdist checks its rules one by one.
    with open(os.path.join(a.dir, "rules.lua"), "w") as f:
        lua_head(f, f"{a.rules} suffix rules")
        f.write(f"for i = 0, {a.rules - 1} do\n"
                "  local smn = newSuffixMatchNode()\n"
                f"  smn:add(newDNSName('blocked' .. i .. '.{ORIGIN}.'))\n"
                "  addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN), {name='blocked-' .. i})\n"
                "end\n")
    # The same suffixes in one rule (one SuffixMatchNode): how a dnsdist user
    # would write a block list.
    with open(os.path.join(a.dir, "rules-one.lua"), "w") as f:
        lua_head(f, f"one rule of {a.rules} suffixes")
        f.write("local smn = newSuffixMatchNode()\n"
                f"for i = 0, {a.rules - 1} do smn:add(newDNSName('blocked' .. i .. '.{ORIGIN}.')) end\n"
                "addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN), "
                "{name='blocked'})\n")
    r = random.Random(a.seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    seen = set()
    with open(os.path.join(a.dir, "flood.txt"), "w") as f:
        while len(seen) < a.flood:
            label = "".join(r.choice(alphabet) for _ in range(12))
            if label not in seen:
                seen.add(label)
                f.write(f"{label}.{VICTIM} A\n")
    names = [f"host{i}.{ORIGIN} A\n" for i in range(a.names)]
    r.shuffle(names)
    with open(os.path.join(a.dir, "normal.txt"), "w") as f:
        f.writelines(names)


def cmd_server_latency(a):
    """The normal client's latency as the server sees it, from a capture on lo
    (tcpdump -w, the client's port only): per query, the time from the query's
    datagram to its answer's (both stamped by the kernel as they are sent, the
    query on the load core, the answer on the servers'), matched by DNS ID.
    What the client's own core adds after (its wake-up to read the answer) is
    not in it. Prints JSON: srv_n (answers matched), srv_p50/p99/p999 in ms."""
    import json
    import struct
    lat = []
    try:
        data = open(a.pcap, "rb").read()
    except OSError:
        data = b""
    if len(data) >= 24:
        magic = data[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        link = struct.unpack(endian + "I", data[20:24])[0]
        l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(link, 14)
        pending = {}
        at = 24
        while at + 16 <= len(data):
            sec, frac, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
            pkt = data[at + 16:at + 16 + incl]
            at += 16 + incl
            t = sec + frac / (1e9 if nano else 1e6)
            ip = pkt[l2:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            udp = ip[(ip[0] & 15) * 4:]
            if len(udp) < 8 + 3:
                continue
            sport, dport = struct.unpack("!HH", udp[:4])
            qid, qr = struct.unpack("!H", udp[8:10])[0], udp[10] >> 7
            if sport == a.port and not qr:
                pending[qid] = t
            elif dport == a.port and qr and qid in pending:
                lat.append((t - pending.pop(qid)) * 1000.0)
    lat.sort()

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    print(json.dumps({"srv_n": len(lat), "srv_p50": q(0.50), "srv_p99": q(0.99),
                      "srv_p999": q(0.999)}))


def add_parser(sub):
    g = sub.add_parser("server-latency")
    g.add_argument("pcap")
    g.add_argument("port", type=int)
    g.set_defaults(f=cmd_server_latency)
    g = sub.add_parser("policy-gen")
    g.add_argument("dir")
    g.add_argument("--rules", type=int, default=1000)
    g.add_argument("--flood", type=int, default=50000)
    g.add_argument("--names", type=int, default=10000)
    g.add_argument("--seed", type=int, default=37)
    g.set_defaults(f=cmd_policy_gen)


def lines(rows, series, Line, ge, le):
    """The section's comparison lines."""
    out = []

    def add(label, scenario, ours, theirs, mode, metric, kind, target, judge):
        o = series(rows, "policy", scenario, ours, mode, metric)
        t = series(rows, "policy", scenario, theirs, mode, metric) if theirs else {}
        if o:
            out.append(Line(label, o, t, metric, kind, target, judge))

    rules = "1,000 suffix rules + 10 dynamic blocks, none matching"
    add(f"{rules}: LS with / LS without: max QPS", "rules", "dnslb-ls-rules", "dnslb-ls",
        "max", "qps", "qps", "ratio >= 0.95", ge(0.95))
    add(f"{rules}: LS vs dnsdist, both with them: max QPS", "rules", "dnslb-ls-rules",
        "dnsdist-rules", "max", "qps", "qps", "ratio >= 1.00", ge(1.0))
    add(f"{rules}: LS with / LS without: CPU per query @ 20k QPS", "rules", "dnslb-ls-rules",
        "dnslb-ls", "fixed", "cpu_us", "us", "(info)", None)
    add(f"{rules}: LS vs dnsdist, both with them: CPU per query @ 20k QPS", "rules",
        "dnslb-ls-rules", "dnsdist-rules", "fixed", "cpu_us", "us", "(info)", None)
    add(f"{rules}: dnsdist with / dnsdist without: max QPS", "rules", "dnsdist-rules",
        "dnsdist", "max", "qps", "qps", "(info)", None)
    add(f"{rules}: LS vs dnsdist with the 1,000 suffixes in one rule: max QPS", "rules",
        "dnslb-ls-rules", "dnsdist-rules-one", "max", "qps", "qps", "(info)", None)
    add(f"{rules}: LS vs dnsdist with the 1,000 suffixes in one rule: CPU per query @ 20k QPS",
        "rules", "dnslb-ls-rules", "dnsdist-rules-one", "fixed", "cpu_us", "us", "(info)", None)

    flood = "random-subdomain flood, normal client"
    add(f"{flood}: LS name-rate block vs no block: p99", "flood", "dnslb-ls-block", "dnslb-ls",
        "flood", "p99", "ms", "(info)", None)
    add(f"{flood}: LS name-rate block vs no block: answered", "flood", "dnslb-ls-block",
        "dnslb-ls", "flood", "answered_pct", "pct", "(info)", None)
    add(f"{flood}: LS with the block vs no flood at all: p99", "flood",
        "dnslb-ls-block", "dnslb-ls-calm", "flood", "p99", "ms", "(info)", None)
    add(f"{flood}: LS with the block vs no flood at the LS, the flood generator beside at the "
        "same rate against a sink on the load core: p99 (unchanged within noise)", "flood",
        "dnslb-ls-block", "dnslb-ls-calm-sink", "flood", "p99", "ms", "(info)", None)
    add(f"{flood}: LS with the block vs no flood at all: p99 at the server (capture on lo)",
        "flood", "dnslb-ls-block", "dnslb-ls-calm", "flood", "srv_p99", "ms", "(info)", None)
    add(f"{flood}: LS with the block: answered", "flood", "dnslb-ls-block", "dnsdist-block",
        "flood", "answered_pct", "pct", "LS >= 99.00 %",
        lambda r, o, t: o is not None and o >= 99.0)
    add(f"{flood}: LS vs dnsdist, both blocking: p99", "flood", "dnslb-ls-block",
        "dnsdist-block", "flood", "p99", "ms", "(info)", None)
    add(f"{flood}: LS vs dnsdist, both blocking: p99 at the server (capture on lo)", "flood",
        "dnslb-ls-block", "dnsdist-block", "flood", "srv_p99", "ms", "(info)", None)
    add(f"{flood}: dnsdist block vs no block: p99", "flood", "dnsdist-block", "dnsdist",
        "flood", "p99", "ms", "(info)", None)
    add(f"{flood}: dnsdist block vs no block: answered", "flood", "dnsdist-block", "dnsdist",
        "flood", "answered_pct", "pct", "(info)", None)

    tap = "dnstap to fstrm_capture"
    add(f"{tap}: LS on (4 message types) / off: max QPS", "dnstap", "dnslb-ls-dnstap",
        "dnslb-ls", "max", "qps", "qps", "ratio >= 0.85", ge(0.85))
    add(f"{tap}: LS vs dnsdist, both on with the same 2 types (client query + response): "
        "max QPS", "dnstap", "dnslb-ls-dnstap2", "dnsdist-dnstap", "max", "qps", "qps",
        "ratio >= 1.00", ge(1.0))
    add(f"{tap}: LS (4 types) vs dnsdist (2 types), both on: max QPS", "dnstap",
        "dnslb-ls-dnstap", "dnsdist-dnstap", "max", "qps", "qps", "(info)", None)
    add(f"{tap}: LS on (2 types) / off: max QPS", "dnstap", "dnslb-ls-dnstap2", "dnslb-ls",
        "max", "qps", "qps", "(info)", None)
    add(f"{tap}: LS on (4 types) / off: CPU per query @ 20k QPS", "dnstap", "dnslb-ls-dnstap",
        "dnslb-ls", "fixed", "cpu_us", "us", "(info)", None)
    add(f"{tap}: LS vs dnsdist, both on with 2 types: CPU per query @ 20k QPS", "dnstap",
        "dnslb-ls-dnstap2", "dnsdist-dnstap", "fixed", "cpu_us", "us", "(info)", None)
    add(f"{tap}: LS vs dnsdist, both on with 2 types: server + collector CPU per query "
        "@ 20k QPS", "dnstap", "dnslb-ls-dnstap2", "dnsdist-dnstap", "fixed", "cpu_all_us",
        "us", "(info)", None)
    add(f"{tap}: dnsdist on / off: max QPS", "dnstap", "dnsdist-dnstap", "dnsdist", "max",
        "qps", "qps", "(info)", None)
    return out


TITLES = {
    ("rules", "max"): ("1,000 suffix rules + 10 dynamic blocks in force, none matching, "
                       "LS and dnsdist with and without: full speed"),
    ("rules", "fixed"): ("1,000 suffix rules + 10 dynamic blocks in force, none matching, "
                         "LS and dnsdist with and without: fixed 20,000 QPS"),
    ("flood", "flood"): ("Random-subdomain flood beside a normal client: the normal client's "
                         "figures (the flood's beside), with and without a name-rate block"),
    ("dnstap", "max"): "dnstap to fstrm_capture, on and off, LS and dnsdist: full speed",
    ("dnstap", "fixed"): "dnstap to fstrm_capture, on and off, LS and dnsdist: fixed 20,000 QPS",
}


def flood_columns(rs):
    """A flood contender's extra columns, from its records by round: the normal
    client's p99 at the server (median over the rounds); from the last round, its
    answered share, and the flood's rate sent and how it was answered."""
    srvs = [x["srv_p99"] for x in rs if x.get("srv_p99") is not None]
    srv = statistics.median(srvs) if srvs else None
    r = rs[-1]
    rc = r.get("flood_rcodes") or {}
    codes = ", ".join(f"{k} {v:,}" for k, v in sorted(rc.items()) if v) or "n/a"
    sent_qps = r.get("flood_sent_qps")
    lost = r.get("flood_lost")
    return [
        "n/a" if srv is None else f"{srv:.3f}",
        "n/a" if r.get("answered_pct") is None else f"{r['answered_pct']:.2f} %",
        "n/a" if sent_qps is None else f"{sent_qps:,.0f}",
        codes + ("" if lost is None else f"; lost {lost:,}"),
    ]


def derive(r):
    """A dnstap record: its collector's CPU time per query answered, and the
    server's and the collector's together. A flood record: the flood's rate
    sent, and the server's CPU time per query answered, the flood's answers
    counted (record's cpu_us counts the normal client's alone)."""
    hz = r.get("clk_tck")
    if isinstance(r.get("collector_ticks"), int) and hz and r.get("completed"):
        r["collector_cpu_us"] = r["collector_ticks"] * 1e6 / hz / r["completed"]
        if r.get("cpu_us") is not None:
            r["cpu_all_us"] = r["cpu_us"] + r["collector_cpu_us"]
    if r.get("mode") != "flood":
        return r
    if r.get("flood_sent") and r.get("flood_run_s"):
        r["flood_sent_qps"] = r["flood_sent"] / r["flood_run_s"]
    ticks, hz = r.get("cpu_ticks"), r.get("clk_tck")
    # (A flood against the sink, not the server: the server answered the normal client only.)
    flood = 0 if r.get("flood_to_sink") else (r.get("flood_completed") or 0)
    done = (r.get("completed") or 0) + flood
    if isinstance(ticks, int) and hz and done:
        r["cpu_us"] = ticks * 1e6 / hz / done
    return r


FLOOD_HEAD = ["normal: p99 at the server ms", "normal: answered", "flood sent/s", "flood answers"]
# The dnstap tables' column: the collector's CPU time per query (n/a: none).
TAP_HEAD = ["collector CPU/query"]
