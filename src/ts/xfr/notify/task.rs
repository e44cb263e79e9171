//! The NOTIFYs one TS sends (RFC 1996): one task ([`run_notifier`]) that
//! keeps at most one pending NOTIFY per (zone, secondary) whatever the number
//! of reloads (the decisions are [`PendingNotify`]'s), sends them from one UDP
//! socket per address family, matches each answer to its NOTIFY by source
//! address and ID, and ends when its token is cancelled. Each NOTIFY carries
//! the zone's SOA in its answer section (RFC 1996 §3.7), and is TSIG-signed
//! with `xfr_key`; a signed answer counts only when it verifies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::{Notified, NotifyStep, PendingNotify, judge_notify_reply};
use crate::clock::unix_now;
use crate::dns::tsig::{Key, ResponseCheck, Signer, verify_response};

/// A zone's new version, to be announced to its secondaries.
#[derive(Debug, Clone)]
pub struct Announce {
    /// The zone's apex.
    pub zone: Name,
    /// Its SOA now (sent in the answer section; `None`: a NOTIFY with the
    /// question only, announcing serial 0).
    pub soa: Option<Record>,
    /// The secondaries to tell.
    pub targets: Vec<SocketAddr>,
    /// The TSIG key to sign with (`xfr_key`).
    pub key: Option<Arc<Key>>,
}

impl Announce {
    /// The serial its SOA carries (0 without one).
    fn serial(&self) -> u32 {
        match self.soa.as_ref().map(|r| &r.data) {
            Some(RData::SOA(soa)) => soa.serial,
            _ => 0,
        }
    }
}

/// The NOTIFY of one zone to one secondary, while not answered.
struct Entry {
    state: PendingNotify,
    /// The SOA and key of the next try.
    soa: Option<Record>,
    key: Option<Arc<Key>>,
    /// The ID of the try in flight, and the key and MAC of its TSIG.
    id: u16,
    signed: Option<(Arc<Key>, Vec<u8>)>,
    /// The TSIG error of the last unsigned refusal of a signed try (see
    /// [`Notified::TsigRefused`]).
    tsig_refused: Option<u16>,
    /// When the wait for its answer ends.
    due: Instant,
}

/// The sockets NOTIFYs are sent from: bound when first needed, one per
/// address family, to `source` when it is a specific address of that family.
struct Sockets {
    source: Option<IpAddr>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    /// The socket for `target`'s family, bound now if need be.
    async fn for_target(&mut self, target: SocketAddr) -> Option<&UdpSocket> {
        let v4 = target.is_ipv4();
        let slot = if v4 { &mut self.v4 } else { &mut self.v6 };
        if slot.is_none() {
            let ip: IpAddr = match self.source {
                Some(ip) if !ip.is_unspecified() && ip.is_ipv4() == v4 => ip,
                _ if v4 => Ipv4Addr::UNSPECIFIED.into(),
                _ => Ipv6Addr::UNSPECIFIED.into(),
            };
            match UdpSocket::bind((ip, 0)).await {
                Ok(s) => *slot = Some(s),
                Err(err) => {
                    tracing::warn!(%ip, %target, %err, "cannot bind a socket to send a NOTIFY from");
                }
            }
        }
        slot.as_ref()
    }
}

/// A datagram from `sock`, or never when there is no socket.
async fn recv_on(sock: Option<&UdpSocket>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// Sends the NOTIFYs of the zones announced on `announces` (from `source`,
/// see [`Sockets`]) with the back-off `policy` until each is answered or
/// given up, calling `report` with each outcome. Ends when `token` is
/// cancelled (pending NOTIFYs are dropped), or when `announces` is closed
/// and nothing is pending.
pub async fn run_notifier(
    source: Option<IpAddr>,
    mut announces: mpsc::UnboundedReceiver<Announce>,
    token: CancellationToken,
    policy: impl Fn(u32) -> Option<Duration>,
    mut report: impl FnMut(&Name, SocketAddr, Notified),
) {
    let mut sockets = Sockets {
        source,
        v4: None,
        v6: None,
    };
    let mut pending: HashMap<(Name, SocketAddr), Entry> = HashMap::new();
    let mut open = true;
    let (mut buf4, mut buf6) = (vec![0u8; 4096], vec![0u8; 4096]);
    while open || !pending.is_empty() {
        let next_due = pending.values().map(|e| e.due).min();
        tokio::select! {
            () = token.cancelled() => return,
            a = announces.recv(), if open => match a {
                Some(a) => announced(&mut sockets, &mut pending, &a, &policy, &mut report).await,
                None => open = false,
            },
            got = recv_on(sockets.v4.as_ref(), &mut buf4) => {
                if let Some((n, from)) = got {
                    answered(&mut sockets, &mut pending, buf4.get(..n).unwrap_or_default(), from, &policy, &mut report).await;
                }
            }
            got = recv_on(sockets.v6.as_ref(), &mut buf6) => {
                if let Some((n, from)) = got {
                    answered(&mut sockets, &mut pending, buf6.get(..n).unwrap_or_default(), from, &policy, &mut report).await;
                }
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<_> = pending.iter().filter(|(_, e)| e.due <= now).map(|(k, _)| k.clone()).collect();
                for key in due {
                    if let Some(e) = pending.get_mut(&key) {
                        let step = e.state.timed_out(&policy);
                        take_step(&mut sockets, &mut pending, &key, step, &mut report).await;
                    }
                }
            }
        }
    }
}

/// `a` received: for each of its targets, the NOTIFY pending renewed, or a
/// new one sent.
async fn announced(
    sockets: &mut Sockets,
    pending: &mut HashMap<(Name, SocketAddr), Entry>,
    a: &Announce,
    policy: impl Fn(u32) -> Option<Duration>,
    report: &mut impl FnMut(&Name, SocketAddr, Notified),
) {
    for &target in &a.targets {
        let key = (a.zone.clone(), target);
        let step = if let Some(e) = pending.get_mut(&key) {
            e.soa.clone_from(&a.soa);
            e.key.clone_from(&a.key);
            e.state.renew(a.serial())
        } else {
            let (state, step) = PendingNotify::start(a.serial(), &policy);
            let e = Entry {
                state,
                soa: a.soa.clone(),
                key: a.key.clone(),
                id: 0,
                signed: None,
                tsig_refused: None,
                due: Instant::now(),
            };
            pending.insert(key.clone(), e);
            step
        };
        take_step(sockets, pending, &key, step, report).await;
    }
}

/// `reply` from `from`: the answer to a pending NOTIFY when its source and
/// ID match the try in flight (and its TSIG verifies when signed).
async fn answered(
    sockets: &mut Sockets,
    pending: &mut HashMap<(Name, SocketAddr), Entry>,
    reply: &[u8],
    from: SocketAddr,
    policy: impl Fn(u32) -> Option<Duration>,
    report: &mut impl FnMut(&Name, SocketAddr, Notified),
) {
    let Some(h) = crate::dns::WireHeader::read(reply) else {
        return;
    };
    let found = pending
        .iter_mut()
        .find(|((_, target), e)| *target == from && e.id == h.id);
    let Some((key, e)) = found else {
        return;
    };
    // A signed NOTIFY is answered only by an answer signed with its key
    // (RFC 8945 §5.4: one without a TSIG, or with an empty MAC, is
    // discarded), or anyone who can send a datagram with the try's ID from
    // the secondary's address could end the retries.
    let check = e
        .signed
        .as_ref()
        .map(|(k, mac)| verify_response(reply, k, mac, unix_now()));
    let trusted = matches!(check, None | Some(Ok(ResponseCheck::Signed(_))));
    let Some(judged) = judge_notify_reply(reply, e.id) else {
        return;
    };
    if let (Some(Ok(ResponseCheck::Unverified(error))), Notified::Rejected(_)) = (check, judged)
        && error != 0
    {
        // The secondary's refusal of our key (BADSIG, BADKEY): unsigned, so
        // it ends nothing, but the outcome says why the tries went unheard.
        e.tsig_refused = Some(error);
    }
    if !trusted {
        return;
    }
    let step = e.state.answered(judged, policy);
    let key = key.clone();
    take_step(sockets, pending, &key, step, report).await;
}

/// Does `step` for the pending NOTIFY `key`: sends a try (a new ID) and
/// sets when its wait ends, or forgets it and reports its outcome.
async fn take_step(
    sockets: &mut Sockets,
    pending: &mut HashMap<(Name, SocketAddr), Entry>,
    key: &(Name, SocketAddr),
    step: NotifyStep,
    report: &mut impl FnMut(&Name, SocketAddr, Notified),
) {
    let (zone, target) = key;
    match step {
        NotifyStep::Wait => {}
        NotifyStep::Done(done) => {
            let refused = pending.remove(key).and_then(|e| e.tsig_refused);
            let done = match (done, refused) {
                (Notified::NoReply, Some(error)) => Notified::TsigRefused(error),
                (done, _) => done,
            };
            report(zone, *target, done);
        }
        NotifyStep::Send { wait, .. } => {
            let id = fresh_id(pending, *target);
            let Some(e) = pending.get_mut(key) else {
                return;
            };
            e.due = Instant::now() + wait;
            let Some(sock) = sockets.for_target(*target).await else {
                pending.remove(key);
                report(zone, *target, Notified::NoReply);
                return;
            };
            e.id = id;
            let Some(bytes) = notify_message(zone, e) else {
                pending.remove(key);
                report(zone, *target, Notified::NoReply);
                return;
            };
            // A send that fails is a try without an answer: the wait runs.
            if let Err(err) = sock.send_to(&bytes, *target).await {
                tracing::debug!(%zone, %target, %err, "NOTIFY not sent");
            }
        }
    }
}

/// A random ID no other NOTIFY pending to `target` uses (an answer is
/// matched by its source and ID).
fn fresh_id(pending: &HashMap<(Name, SocketAddr), Entry>, target: SocketAddr) -> u16 {
    let taken = |id| pending.iter().any(|((_, t), e)| *t == target && e.id == id);
    let mut id = rand::random();
    // A few draws: fewer NOTIFYs than IDs are ever pending to one target.
    for _ in 0..8 {
        if !taken(id) {
            break;
        }
        id = rand::random();
    }
    id
}

/// The NOTIFY of `zone` for the try of `e` (its ID, its SOA), signed with
/// its key (the key and MAC kept in `e` to check the answer).
fn notify_message(zone: &Name, e: &mut Entry) -> Option<Vec<u8>> {
    let mut m = Message::new(e.id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.add_query(Query::query(zone.clone(), RecordType::SOA));
    if let Some(soa) = &e.soa {
        m.add_answer(soa.clone());
    }
    let mut bytes = m.to_vec().ok()?;
    e.signed = e.key.as_ref().map(|k| {
        let mut signer = Signer::request(k.clone());
        signer.sign(&mut bytes);
        (k.clone(), signer.last_mac().to_vec())
    });
    Some(bytes)
}

/// Tells `target` that `zone` changed (RFC 1996), with the back-off of
/// `policy`, from `source` (see [`run_notifier`]): what became of it.
pub async fn notify_with(
    source: Option<IpAddr>,
    target: SocketAddr,
    zone: &Name,
    key: Option<Arc<Key>>,
    policy: impl Fn(u32) -> Option<Duration>,
) -> Notified {
    let (tx, rx) = mpsc::unbounded_channel();
    let announce = Announce {
        zone: zone.clone(),
        soa: None,
        targets: vec![target],
        key,
    };
    if tx.send(announce).is_err() {
        return Notified::NoReply;
    }
    drop(tx);
    let mut outcome = Notified::NoReply;
    let report = |_: &Name, _: SocketAddr, done: Notified| outcome = done;
    run_notifier(source, rx, CancellationToken::new(), policy, report).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::tsig::Algorithm;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake secondary that answers each NOTIFY with `reply(notify)`,
    /// counting them in `got`, until aborted.
    async fn fake(sock: UdpSocket, got: Arc<AtomicUsize>, reply: fn(&[u8]) -> Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            got.fetch_add(1, Ordering::SeqCst);
            let _ = sock.send_to(&reply(&buf[..n]), from).await;
        }
    }

    /// NOERROR to the NOTIFY `q`: its ID and question, QR and AA set, no TSIG.
    fn unsigned_noerror(q: &[u8]) -> Vec<u8> {
        let m = Message::from_vec(q).unwrap();
        let mut r = Message::new(m.metadata.id, MessageType::Response, OpCode::Notify);
        r.metadata.authoritative = true;
        r.add_queries(m.queries.clone());
        r.to_vec().unwrap()
    }

    /// [`unsigned_noerror`] with a TSIG of the key `xfr.` whose MAC is empty
    /// and whose error is 0: the form only a BADSIG or BADKEY answer takes
    /// (RFC 8945 §5.3.2), here on a NOERROR nobody signed.
    fn empty_mac_noerror(q: &[u8]) -> Vec<u8> {
        let mut r = unsigned_noerror(q);
        let id = [r[0], r[1]];
        r[11] = 1; // ARCOUNT
        let mut rdata = b"\x0bhmac-sha256\x00".to_vec();
        rdata.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 44, 0, 0]); // time, fudge, MAC size 0
        rdata.extend_from_slice(&[id[0], id[1], 0, 0, 0, 0]); // original ID, error, other
        r.extend_from_slice(b"\x03xfr\x00\x00\xfa\x00\xff\x00\x00\x00\x00");
        r.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        r.extend_from_slice(&rdata);
        r
    }

    /// NOTAUTH with an unsigned TSIG (empty MAC) naming `error`: a peer
    /// refusing the NOTIFY for its key (RFC 8945 §5.3.2).
    fn refusal(q: &[u8], error: u16) -> Vec<u8> {
        let mut r = empty_mac_noerror(q);
        r[3] = (r[3] & 0xf0) | 9; // NOTAUTH
        let n = r.len();
        r[n - 4..n - 2].copy_from_slice(&error.to_be_bytes());
        r
    }

    /// What `notify_with` makes of a secondary answering every try with
    /// `reply`: the outcome, and the tries it got.
    async fn notified(reply: fn(&[u8]) -> Vec<u8>) -> (Notified, usize) {
        let key = Arc::new(Key::new("xfr", Algorithm::HmacSha256, &[7u8; 32]).unwrap());
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = sock.local_addr().unwrap();
        let got = Arc::new(AtomicUsize::new(0));
        let secondary = tokio::spawn(fake(sock, got.clone(), reply));
        let zone = Name::from_ascii("n.test.").unwrap();
        // Three short tries: only the count matters, not the time.
        let policy = |n: u32| (n < 3).then(|| Duration::from_millis(200));
        let outcome = notify_with(None, target, &zone, Some(key), policy).await;
        secondary.abort();
        (outcome, got.load(Ordering::SeqCst))
    }

    /// RFC 8945 §5.4: a client that signed its request and gets an answer
    /// without a TSIG treats it as a format error and discards it; taken as
    /// the acknowledgement, anyone who can put a datagram with the right ID
    /// at the secondary's address would end the retries.
    #[tokio::test]
    async fn an_unsigned_answer_to_a_signed_notify_is_no_acknowledgement() {
        no_acknowledgement(unsigned_noerror, "an unsigned answer").await;
    }

    /// Every try is sent to a secondary answering each with `reply`
    /// (`what`): none is taken as its acknowledgement.
    async fn no_acknowledgement(reply: fn(&[u8]) -> Vec<u8>, what: &str) {
        let (outcome, tries) = notified(reply).await;
        assert_eq!(outcome, Notified::NoReply, "{what} taken as {outcome:?}");
        assert_eq!(tries, 3, "every try sent");
    }

    /// The same with a TSIG whose MAC is empty (the form of a peer's
    /// unsigned BADSIG/BADKEY): a NOERROR with it is an acknowledgement
    /// nobody signed.
    #[tokio::test]
    async fn an_answer_with_an_empty_mac_to_a_signed_notify_is_no_acknowledgement() {
        no_acknowledgement(empty_mac_noerror, "an empty MAC").await;
    }

    /// A secondary that refuses the key (an
    /// unsigned NOTAUTH + BADSIG or BADKEY) is not a dead one: every try is
    /// sent (the refusal is unverified), and the outcome names the error.
    #[tokio::test]
    async fn a_refusal_of_the_key_is_told_from_no_answer() {
        let (outcome, tries) = notified(|q| refusal(q, 16)).await;
        assert_eq!(outcome, Notified::TsigRefused(16));
        assert_eq!(tries, 3, "every try sent");
        let (outcome, _) = notified(|q| refusal(q, 17)).await;
        assert_eq!(outcome, Notified::TsigRefused(17));
    }
}
