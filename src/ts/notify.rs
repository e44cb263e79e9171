//! NOTIFY (RFC 1996) from a TS to its secondaries: sent (TSIG-signed with
//! `xfr_key`), sent again with growing waits ([`notify_wait`]) until the
//! secondary answers, and the answer judged ([`judge_notify_reply`]).

use crate::dns;

/// How long to wait for the acknowledgement of try `n` (from 0) of a
/// NOTIFY before sending it again, `None` past the last try. RFC 1996 §3.6
/// leaves the interval and count to the operator (suggesting up to 5
/// retransmissions); here 5 tries, each wait twice the one before from one
/// second (1, 2, 4, 8, 16 s): a secondary that was restarting for half a
/// minute still hears of the change, and a lost datagram is resent at once.
pub fn notify_wait(n: u32) -> Option<std::time::Duration> {
    const TRIES: u32 = 5;
    (n < TRIES).then(|| std::time::Duration::from_secs(1 << n))
}

/// The NOTIFY opcode (RFC 1996 §3.1).
const OPCODE_NOTIFY: u8 = 4;

/// What became of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// The secondary answered NOERROR (RFC 1996 §4.7): acknowledged.
    Acknowledged,
    /// The secondary answered with this rcode (REFUSED, NOTAUTH, ...): it
    /// will not act on the NOTIFY; sending it again would not change that.
    Rejected(u8),
    /// No reply after every try (or no socket to send from).
    NoReply,
}

/// What a datagram `reply` from the secondary says about the NOTIFY with ID
/// `id`: `None` when it is no reply to it (another ID, not a response, not a
/// NOTIFY response), else acknowledged or rejected with its rcode.
pub fn judge_notify_reply(reply: &[u8], id: u16) -> Option<Notified> {
    let h = dns::WireHeader::read(reply)?;
    let opcode = ((h.flags >> 11) & 0x0f) as u8;
    if h.id != id || !h.is_response() || opcode != OPCODE_NOTIFY {
        return None;
    }
    Some(match h.rcode() {
        0 => Notified::Acknowledged,
        rcode => Notified::Rejected(rcode),
    })
}

/// Tells `target` that `zone` changed (RFC 1996) from an unspecified
/// address: whether it was acknowledged (see [`notify_from`]).
pub async fn notify(target: std::net::SocketAddr, zone: &hickory_proto::rr::Name) -> bool {
    notify_from(None, target, zone, None).await == Notified::Acknowledged
}

/// Tells `target` that `zone` changed (RFC 1996): a NOTIFY with the zone's
/// SOA question, sent again after each wait of [`notify_wait`] until the
/// secondary replies (same ID, QR=1, opcode NOTIFY, from `target`) or the
/// tries are spent. Sent from `source` (the TS's listen address, which a
/// secondary's `allow-notify` names) when it is a specific address of
/// `target`'s family; otherwise from the address the kernel's routing picks.
/// With `key` (`xfr_key`) each NOTIFY is TSIG-signed, and a signed reply
/// counts only when its TSIG verifies (an unsigned one is taken, as peers may
/// answer so).
pub async fn notify_from(
    source: Option<std::net::IpAddr>,
    target: std::net::SocketAddr,
    zone: &hickory_proto::rr::Name,
    key: Option<std::sync::Arc<crate::dns::tsig::Key>>,
) -> Notified {
    notify_with(source, target, zone, key, notify_wait).await
}

/// [`notify_from`] with the waits of `policy` (try number to wait, `None`
/// past the last).
pub async fn notify_with(
    source: Option<std::net::IpAddr>,
    target: std::net::SocketAddr,
    zone: &hickory_proto::rr::Name,
    key: Option<std::sync::Arc<crate::dns::tsig::Key>>,
    policy: impl Fn(u32) -> Option<std::time::Duration>,
) -> Notified {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    let ip = match source {
        Some(ip) if !ip.is_unspecified() && ip.is_ipv4() == target.is_ipv4() => ip,
        _ if target.is_ipv4() => std::net::Ipv4Addr::UNSPECIFIED.into(),
        _ => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = match tokio::net::UdpSocket::bind((ip, 0)).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%ip, %target, %err, "cannot bind a socket to send a NOTIFY from");
            return Notified::NoReply;
        }
    };
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while let Some(wait_for) = policy(n) {
        n += 1;
        let id: u16 = rand::random();
        let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
        m.metadata.authoritative = true;
        m.add_query(Query::query(zone.clone(), RecordType::SOA));
        let Ok(mut bytes) = m.to_vec() else {
            return Notified::NoReply;
        };
        let mut signer = key.clone().map(crate::dns::tsig::Signer::request);
        if let Some(s) = &mut signer {
            s.sign(&mut bytes);
        }
        if sock.send_to(&bytes, target).await.is_err() {
            tokio::time::sleep(wait_for).await;
            continue;
        }
        let wait = async {
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return None;
                };
                if from != target {
                    continue;
                }
                let reply = buf.get(..n).unwrap_or_default();
                let trusted = match (&key, &signer) {
                    (Some(k), Some(s)) => crate::dns::tsig::verify_response(
                        reply,
                        k,
                        s.last_mac(),
                        crate::dns::tsig::unix_now(),
                    )
                    .is_ok(),
                    _ => true,
                };
                if let Some(judged) = judge_notify_reply(reply, id).filter(|_| trusted) {
                    return Some(judged);
                }
            }
        };
        if let Ok(Some(judged)) = tokio::time::timeout(wait_for, wait).await {
            return judged;
        }
    }
    Notified::NoReply
}

/// Logs what became of a NOTIFY of `zone` to `target`: acknowledged at
/// info, a rejection (naming its rcode) or no reply as a warning.
pub fn log_notified(
    ts: &str,
    zone: &hickory_proto::rr::Name,
    target: std::net::SocketAddr,
    done: Notified,
) {
    match done {
        Notified::Acknowledged => tracing::info!(ts, %zone, %target, "notify acknowledged"),
        Notified::Rejected(code) => {
            let rcode = dns::rcode_mnemonic(u16::from(code))
                .map_or_else(|| code.to_string(), str::to_owned);
            tracing::warn!(ts, %zone, %target, %rcode, "notify rejected by the secondary");
        }
        Notified::NoReply => tracing::warn!(ts, %zone, %target, "notify not acknowledged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u16, flags: u16) -> Vec<u8> {
        let mut h = vec![0u8; 12];
        h[..2].copy_from_slice(&id.to_be_bytes());
        h[2..4].copy_from_slice(&flags.to_be_bytes());
        h
    }

    #[test]
    fn notify_backs_off_doubling_over_five_tries() {
        let waits: Vec<u64> = (0..10)
            .map_while(notify_wait)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(notify_wait(5), None);
        assert_eq!(notify_wait(u32::MAX), None);
    }

    #[test]
    fn only_a_noerror_notify_response_with_our_id_is_an_acknowledgement() {
        let notify_resp = 0x8000 | (4 << 11) | 0x0400; // QR, NOTIFY, AA
        assert_eq!(
            judge_notify_reply(&header(7, notify_resp), 7),
            Some(Notified::Acknowledged)
        );
        assert_eq!(
            judge_notify_reply(&header(7, notify_resp | 5), 7),
            Some(Notified::Rejected(5)),
            "REFUSED"
        );
        assert_eq!(
            judge_notify_reply(&header(7, notify_resp | 9), 7),
            Some(Notified::Rejected(9)),
            "NOTAUTH"
        );
        assert_eq!(
            judge_notify_reply(&header(8, notify_resp), 7),
            None,
            "other ID"
        );
        assert_eq!(judge_notify_reply(&header(7, 4 << 11), 7), None, "QR=0");
        assert_eq!(
            judge_notify_reply(&header(7, 0x8000), 7),
            None,
            "opcode QUERY"
        );
        assert_eq!(judge_notify_reply(&[0u8; 5], 0), None, "short");
    }
}
