// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// dnslb's XDP program: UDP datagrams to a port dnslb serves on this
// interface go to the AF_XDP socket of the queue they arrived on; those of a
// client inside a blocked network or outside the allowed ones (when they are
// set) are dropped here, counted, the blocks looked up first (a flood's
// sources are blocked ones: one trie lookup each, not two; dnsdist's eBPF
// filter also runs before its ACL); every other frame passes to the kernel
// untouched (TCP, ARP, ICMP, other ports, VLAN tags, IPv4 options and
// fragments, IPv6 extension headers: anything not read to the end).
//
// Built by bpf/build into bpf/dnslb_xdp.o, which the binary carries; a test
// rebuilds it and compares. The maps are filled by src/xdp/program.rs.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The blocked tries' value: the datagrams dropped for that network, read by
// src/xdp/program.rs so that they count as the block's (and keep it renewed).

// A served IPv4 address and UDP port (network order): 8 bytes, so that the
// hash of a served lookup (the first map lookup of every UDP datagram) is
// short. dnslb writes the interface's own addresses (an unspecified listen
// address is served as each of them), never a wildcard.
struct served4 {
	__u8 addr[4];
	__u16 port;
	__u16 pad;
};

// The same for IPv6.
struct served6 {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

struct prefix4 {
	__u32 len;
	__u8 addr[4];
};

struct prefix6 {
	__u32 len;
	__u8 addr[16];
};

// Counters, per CPU; src/xdp/program.rs sums them.
enum counter {
	TO_USER = 0,  // handed to an AF_XDP socket
	BLOCKED = 1,  // dropped: a blocked client's
	NO_SOCKET = 2, // served, but no socket on this queue: passed to the kernel
	NOT_ALLOWED = 3, // dropped: a client outside the allowed networks
	COUNTERS = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct served4);
	__type(value, __u8);
} served4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct served6);
	__type(value, __u8);
} served6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix4);
	__type(value, __u64);
} blocked4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix6);
	__type(value, __u64);
} blocked6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix4);
	__type(value, __u8);
} allowed4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix6);
	__type(value, __u8);
} allowed6 SEC(".maps");

// [0]: how many prefixes are blocked (no trie lookup while it is 0);
// [1]: 1 when only the allowed networks are served (0: everyone).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);
	if (n)
		*n += 1;
}

static __always_inline int setting(__u32 which)
{
	__u32 *n = bpf_map_lookup_elem(&settings, &which);
	return n && *n;
}

// To the queue's socket, or to the kernel when it has none.
static __always_inline int to_user(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &queue)) {
		count(NO_SOCKET);
		return XDP_PASS;
	}
	count(TO_USER);
	return bpf_redirect_map(&xsks, queue, XDP_PASS);
}

SEC("xdp")
int dnslb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		// Options and fragments are the kernel's to put together.
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(0x3fff))
			return XDP_PASS;
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return XDP_PASS;
		struct served4 to = { .port = udp->dest };
		__builtin_memcpy(to.addr, &ip->daddr, 4);
		if (!bpf_map_lookup_elem(&served4, &to))
			return XDP_PASS;
		struct prefix4 client = { .len = 32 };
		__builtin_memcpy(client.addr, &ip->saddr, 4);
		if (setting(0)) {
			__u64 *dropped = bpf_map_lookup_elem(&blocked4, &client);
			if (dropped) {
				__sync_fetch_and_add(dropped, 1);
				count(BLOCKED);
				return XDP_DROP;
			}
		}
		if (setting(1) && !bpf_map_lookup_elem(&allowed4, &client)) {
			count(NOT_ALLOWED);
			return XDP_DROP;
		}
		return to_user(ctx);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		// Extension headers are the kernel's to walk.
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > end)
			return XDP_PASS;
		struct served6 to = { .port = udp->dest };
		__builtin_memcpy(to.addr, &ip6->daddr, 16);
		if (!bpf_map_lookup_elem(&served6, &to))
			return XDP_PASS;
		struct prefix6 client = { .len = 128 };
		__builtin_memcpy(client.addr, &ip6->saddr, 16);
		if (setting(0)) {
			__u64 *dropped = bpf_map_lookup_elem(&blocked6, &client);
			if (dropped) {
				__sync_fetch_and_add(dropped, 1);
				count(BLOCKED);
				return XDP_DROP;
			}
		}
		if (setting(1) && !bpf_map_lookup_elem(&allowed6, &client)) {
			count(NOT_ALLOWED);
			return XDP_DROP;
		}
		return to_user(ctx);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
