#!/usr/bin/env python3
"""Splits a `perf record -g` profile of one front end (the LS or dnsdist)
into components, for bench/profile-split.

    perf_split.py PERF_DATA COMM[,COMM...] US_PER_QUERY

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


def samples(path):
    """Yields (comm, chain) per sample of `perf script`."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
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


if __name__ == "__main__":
    main()
