//! The AF_XDP path's families (`dnslb_<side>_xdp_*`), written once it has
//! started (0 sockets while its interfaces are gone): its sockets, what became of the frames its workers took, and the
//! XDP program's own counters.
use std::sync::atomic::Ordering::Relaxed;

use super::expo::Expo;
use crate::xdp::XdpCounters;
use crate::xdp::frame::Skip;

/// `prefix` is `dnslb_ts` or `dnslb`.
pub(crate) fn write_xdp(e: &mut Expo, prefix: &str, x: &XdpCounters) {
    if !x.started.load(Relaxed) {
        return;
    }
    let sockets = x.sockets.load(Relaxed);
    let name = format!("{prefix}_xdp_sockets");
    e.family(
        &name,
        "gauge",
        "AF_XDP sockets serving (one per interface queue).",
    );
    e.sample(&name, &[], sockets);
    e.by_label(
        &format!("{prefix}_xdp_frames_total"),
        "Frames the AF_XDP workers took, by what became of them: answered in place, answered through the kernel's socket (larger than the MTU, or later), unanswered (the query was dropped).",
        "result",
        [
            ("answered", &x.answered),
            ("via_kernel", &x.via_kernel),
            ("unanswered", &x.unanswered),
        ],
    );
    e.by_label(
        &format!("{prefix}_xdp_skipped_total"),
        "Frames the AF_XDP workers dropped unread, by reason (as the kernel drops them).",
        "reason",
        Skip::ALL.map(Skip::as_str).into_iter().zip(&x.skipped),
    );
    e.by_label(
        &format!("{prefix}_xdp_lost_total"),
        "Datagrams the XDP program handed to an AF_XDP socket that the kernel dropped before a worker read them (the socket's XDP_STATISTICS): rx_ring_full (the workers behind), fill_ring_empty (no free frame), rx_dropped (other reasons). The three add up.",
        "why",
        [
            ("rx_ring_full", &x.lost_rx_ring_full),
            ("fill_ring_empty", &x.lost_fill_ring_empty),
            ("rx_dropped", &x.lost_rx_dropped),
        ],
    );
    e.by_label(
        &format!("{prefix}_xdp_program_total"),
        "The XDP program's datagrams to a served address: to_user (to a socket), blocked (a blocked client's, dropped), not_allowed (a client outside allow, dropped), no_socket (passed to the kernel).",
        "what",
        [
            ("to_user", &x.program_to_user),
            ("blocked", &x.program_blocked),
            ("not_allowed", &x.program_not_allowed),
            ("no_socket", &x.program_no_socket),
        ],
    );
    if x.upstream_on.load(Relaxed) {
        e.by_label(
            &format!("{prefix}_xdp_upstream_total"),
            "Queries to the backends under upstream = \"xdp\", by the way they left: xsk (in a frame of an AF_XDP socket), sockets (a backend the route and neighbour tables do not put behind an XDP interface, or no room on the way to a worker).",
            "via",
            [("xsk", &x.upstream_xsk), ("sockets", &x.upstream_sockets)],
        );
        let name = format!("{prefix}_xdp_upstream_answers_total");
        e.family(
            &name,
            "counter",
            "Datagrams to the addresses the upstream queries leave from that the AF_XDP workers took, each judged as a backend's answer (ID, source, question; what fails is in the dropped responses' counts).",
        );
        e.sample(&name, &[], x.upstream_answers.load(Relaxed));
    }
}
