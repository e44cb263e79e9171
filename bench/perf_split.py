#!/usr/bin/env python3
"""Splits a `perf record -g` profile of one front end (the LS or dnsdist)
into components, for bench/profile-split; or, with --flood, a whole-machine
profile of a flood into the sender's and the receiver's part, for
bench/xdp --flood (see flood_main below).

    perf_split.py PERF_DATA COMM[,COMM...] US_PER_QUERY
    perf_split.py --flood PERF_DATA QUERIES_SENT SENDER_PID SERVER_PID[,PID...]

Each sample of a thread whose name starts with one of COMM is put in one
component by its stack: kernel samples by the system call they are under
(a send: the loopback delivery, which runs the receiver's softirq and wakes
it; a receive; a wait, wake-up or schedule), user samples by their leaf
function (clock reads, the allocator, copies, TLS, HTTP/2, the async runtime,
syscall wrappers, and the rest: the DNS work). Prints each component's share
and its microseconds per query (share x US_PER_QUERY, the front end's CPU
per query from /proc)."""
import collections
import re
import subprocess
import sys

WAIT = re.compile(r"epoll|schedule|futex|hrtimer|nanosleep|pick_next|finish_task_switch")
SEND = re.compile(r"sendmsg|sendmmsg|sendto|tcp_sendmsg|udp_sendmsg|ip_output|__dev_queue_xmit|ksys_write")
RECV = re.compile(r"recvmsg|recvmmsg|recvfrom|tcp_recvmsg|udp_recvmsg|ksys_read")
USER = [
    ("user: clock reads", re.compile(r"clock_gettime|__vdso")),
    ("user: allocator", re.compile(r"malloc|_int_free|^free$|cfree|unlink_chunk|realloc|tcache")),
    ("user: copies (memcpy/memmove/memset)", re.compile(r"memmove|memcpy|memset")),
    ("user: TLS (record crypto and state)",
     re.compile(r"aes|gcm|ghash|chacha|poly1305|aws_lc|rustls|EVP_|SSL|ssl_|tls")),
    ("user: HTTP/2", re.compile(r"h2::|hyper::|hpack|h2o_|nghttp2")),
    ("user: async runtime (tasks, wakers, timers)",
     re.compile(r"tokio::|futures_|mio::|LocalKey|Waker|::wake")),
    ("user: syscall wrappers", re.compile(r"pthread|^syscall|__libc_|recvmmsg|sendmmsg|recvmsg|sendmsg|nix::")),
]


def component(chain):
    """The component of one sample: `chain` is [(symbol, dso)], leaf first."""
    sym, dso = chain[0]
    if "kernel" in dso:
        syms = " ".join(s for s, _ in chain)
        if SEND.search(syms):
            return "kernel: send (loopback delivery: the receiver's softirq, its wake-up)"
        if RECV.search(syms):
            return "kernel: receive"
        if WAIT.search(syms):
            return "kernel: wait, wake-up, schedule"
        return "kernel: other"
    if "vdso" in dso:
        return "user: clock reads"
    for name, pattern in USER:
        if pattern.search(sym) or (name.startswith("user: TLS") and re.search(r"libcrypto|libssl", dso)):
            return name
    if re.search(r"h2o", dso):
        return "user: HTTP/2"
    return "user: the DNS work (parse, policy, route, IDs, counters)"


def samples(path, fields="comm"):
    """Yields (head, chain) per sample of `perf script`: head is the sample's
    line (FIELDS, e.g. "comm" or "pid,comm,period"), chain its frames."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", f"{fields},ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        chain = []
        for frame in lines[1:]:
            m = re.match(r"\s*\S+ (.*) \((.*)\)$", frame)
            if m:
                chain.append((m.group(1), m.group(2)))
        if chain:
            yield lines[0].strip(), chain


def main():
    path, comms, us = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3])
    counts = collections.Counter(
        component(chain) for comm, chain in samples(path) if any(comm.startswith(c) for c in comms))
    total = sum(counts.values()) or 1
    for name, n in counts.most_common():
        print(f"  {100 * n / total:5.1f}%  {us * n / total:5.1f} us  {name}")
    print(f"  ({total} samples)")


# --flood: the whole machine's samples (perf record -a -g -e cpu-clock) during a
# flood of dropped queries, split by call chain. On a veth pair the receiving
# side's work runs in the NET_RX softirq wherever it is raised: mostly inside
# the sender's own system calls, on the sender's core. What runs under
# net_rx_action in the sender, the server processes, ksoftirqd or the idle
# task is the receiver's; so are the server processes' own samples. The
# sender is its process's samples outside net_rx_action (its system calls down
# to the veth's transmit). Idle time and other processes (the softirq work
# they were interrupted for too: on a shared machine, other people's traffic)
# are neither.
RX_ROOT = re.compile(r"^(net_rx_action|napi_threaded_poll|__napi_poll)$")
RX_PARTS = [
    # (name, a frame the chain must hold or None, a pattern on any frame of the
    # chain): the first match wins, so a free inside the veth's copy is a free.
    ("receiver: socket filter program (BPF)", re.compile(r"^sk_filter_trim_cap$"), re.compile(r"^bpf_prog_")),
    ("receiver: XDP program (BPF, its map lookups)", None,
     re.compile(r"^bpf_prog_|bpf_prog_run_xdp|^trie_lookup_elem$")),
    ("receiver: skb and page freed (the sender's AF_XDP completion in it)", None,
     re.compile(r"kfree_skb|consume_skb|skb_release|sk_skb_reason_drop|xsk_destruct_skb|skb_free_head|"
                r"skb_defer_free|page_pool_put|napi_pp_put_page|napi_consume_skb|kmem_cache_free|^kfree$")),
    ("receiver: veth copies the skb into a page for XDP", None,
     re.compile(r"veth_convert_skb_to_xdp_buff|skb_pp_cow_data")),
    ("receiver: IP and UDP layers (to the socket)", None,
     re.compile(r"^ip_|^ip6_|udp|^__netif_receive_skb|netif_receive_skb|^nf_|^raw_local_deliver")),
    ("receiver: NAPI, the veth's ring or the backlog", None, re.compile(r".")),
]
IDLE = re.compile(r"idle|cpuidle|mwait|halt|pv_native_safe_halt|default_enter_idle")


def flood_component(pid, comm, chain, server_pids, sender):
    """One sample's part: a receiver's component, the sender, idle or other."""
    syms = [s for s, _ in chain]
    ours = pid == sender or pid in server_pids or comm.startswith(("ksoftirqd", "swapper"))
    if ours and any(RX_ROOT.match(s) for s in syms):
        for name, under, pattern in RX_PARTS:
            if under is not None and not any(under.match(s) for s in syms):
                continue
            if any(pattern.search(s) for s in syms):
                return name
    if pid in server_pids:
        side = "kernel" if "kernel" in chain[0][1] else "user"
        return f"receiver: the server's threads ({side})"
    if pid == sender:
        return "sender: its process (system calls down to the veth's transmit)"
    if comm.startswith("swapper") or IDLE.search(syms[0]):
        return "idle"
    return "other processes"


def flood_main(args):
    """perf_split.py --flood PERF_DATA QUERIES_SENT SENDER_PID SERVER_PID[,PID...]

    Prints each part in ns per query sent, then one line
    `split receiver=US sender=US other=US` (µs per query sent)."""
    path, sent, sender = args[0], int(args[1]), int(args[2])
    server_pids = {int(p) for p in args[3].split(",") if p}
    ns = collections.Counter()
    for head, chain in samples(path, "pid,comm,period"):
        f = head.split()
        try:
            period, pid, comm = int(f[-1]), int(f[-2]), " ".join(f[:-2])
        except (ValueError, IndexError):
            continue
        ns[flood_component(pid, comm, chain, server_pids, sender)] += period
    per = lambda part: ns[part] / max(sent, 1)
    for name, _ in sorted(ns.items()):
        if name != "idle":
            print(f"  {per(name):8.1f} ns a query  {name}")
    rx = sum(per(n) for n in ns if n.startswith("receiver"))
    tx = sum(per(n) for n in ns if n.startswith("sender"))
    print(f"split receiver={rx / 1000:.3f} sender={tx / 1000:.3f} other={per('other processes') / 1000:.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        flood_main(sys.argv[2:])
    else:
        main()
