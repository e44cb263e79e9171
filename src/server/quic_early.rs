//! Session resumption and 0-RTT on the QUIC servers (DoQ, DoH/3): the
//! server's session store ([`SessionStore`]: stateful, so each ticket
//! resumes once and 0-RTT is possible, counting resumptions), which queries
//! may be answered from 0-RTT data ([`replay_safe`]: RFC 9250 §4.5, only
//! what changes nothing), and a connection's handshake state as its streams
//! see it ([`Handshake`], [`HandshakeWait`]): a query that arrived in 0-RTT
//! and is not replay-safe waits for the handshake to complete. An attacker
//! replaying a client's first flight cannot complete the handshake, so
//! whatever waits for it is never processed twice; the client loses nothing
//! but the round trip 0-RTT would have saved (RFC 9250 §4.5's first choice:
//! "queue the offending transaction").
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use tokio::sync::watch;

use crate::dns::{peek_plain_query, u16_at};

/// Sessions a QUIC server remembers for resumption (each ticket is used
/// once; rustls sends two per connection). The oldest go first: a flood of
/// new handshakes costs others their resumption, never memory.
pub const SESSIONS: usize = 8192;

/// RR type IXFR (RFC 1995).
const TYPE_IXFR: u16 = 251;
/// RR type AXFR (RFC 5936).
const TYPE_AXFR: u16 = 252;

/// Whether the query `raw` may be answered from 0-RTT data, before the
/// handshake completes (where an attacker may have replayed it): only a
/// plain query (QR=0, opcode QUERY, one question) and not a zone transfer.
/// UPDATE, NOTIFY, any other opcode, AXFR, IXFR and anything that cannot be
/// read wait for the handshake.
pub fn replay_safe(raw: &[u8]) -> bool {
    let Some((_, end)) = peek_plain_query(raw) else {
        return false;
    };
    let qtype = end.checked_sub(4).and_then(|at| u16_at(raw, at));
    !matches!(qtype, Some(TYPE_AXFR | TYPE_IXFR) | None)
}

/// A QUIC server's stateful session store (rustls accepts 0-RTT only from
/// stateful tickets): at most [`SESSIONS`], each taken once, every
/// resumption counted in `resumed`.
pub struct SessionStore {
    inner: Arc<ServerSessionMemoryCache>,
    resumed: Arc<AtomicU64>,
}

impl SessionStore {
    /// An empty store counting resumptions in `resumed`.
    pub fn new(resumed: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(SessionStore {
            inner: ServerSessionMemoryCache::new(SESSIONS),
            resumed,
        })
    }
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("resumed", &self.resumed.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let found = self.inner.take(key);
        if found.is_some() {
            self.resumed.fetch_add(1, Relaxed);
        }
        found
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A connection's handshake as its connection task knows it: created not
/// done, [`Handshake::complete`] once it is.
pub struct Handshake(watch::Sender<bool>);

impl Handshake {
    /// A handshake in progress, and what its streams wait on.
    pub fn new() -> (Handshake, HandshakeWait) {
        let (tx, rx) = watch::channel(false);
        (Handshake(tx), HandshakeWait(rx))
    }

    /// The handshake is done: the client is live, its data no replay.
    pub fn complete(&self) {
        self.0.send_replace(true);
    }
}

/// A stream's view of its connection's handshake.
#[derive(Clone)]
pub struct HandshakeWait(watch::Receiver<bool>);

impl HandshakeWait {
    /// Whether the handshake is known complete.
    pub fn is_complete(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the handshake completes: `false` when it never will (the
    /// connection failed, timed out, or its task ended).
    pub async fn complete(&mut self) -> bool {
        self.0.wait_for(|done| *done).await.is_ok()
    }
}

/// What a query read on a stream may do, by its connection's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyDecision {
    /// The handshake is complete: as always.
    Answer,
    /// Arrived in 0-RTT and changes nothing: answered at once.
    AnswerEarly,
    /// Arrived in 0-RTT and is not replay-safe: waits for the handshake.
    Wait,
}

/// The [`EarlyDecision`] for the query `raw` when the handshake is
/// `complete` or not (pure: the policy).
pub fn early_decision(raw: &[u8], complete: bool) -> EarlyDecision {
    if complete {
        EarlyDecision::Answer
    } else if replay_safe(raw) {
        EarlyDecision::AnswerEarly
    } else {
        EarlyDecision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `a.test.` of `qtype` with `flags`.
    fn msg(flags: u16, qtype: u16) -> Vec<u8> {
        let mut m = vec![0, 0];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x01a\x04test\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn only_plain_queries_that_are_not_transfers_are_replay_safe() {
        assert!(replay_safe(&msg(0x0100, 1)), "A");
        assert!(replay_safe(&msg(0x0000, 16)), "TXT");
        assert!(replay_safe(&msg(0x0100, 255)), "ANY");
        assert!(!replay_safe(&msg(0, TYPE_AXFR)), "AXFR");
        assert!(!replay_safe(&msg(0, TYPE_IXFR)), "IXFR");
        assert!(!replay_safe(&msg(5 << 11, 6)), "UPDATE");
        assert!(!replay_safe(&msg(4 << 11, 6)), "NOTIFY");
        assert!(!replay_safe(&msg(0x8000, 1)), "a response");
        assert!(!replay_safe(&[0; 12]), "no question");
        assert!(!replay_safe(&msg(0, 1)[..15]), "cut short");
    }

    #[test]
    fn before_the_handshake_only_a_replay_safe_query_is_answered() {
        let a = msg(0x0100, 1);
        let axfr = msg(0, TYPE_AXFR);
        assert_eq!(early_decision(&a, true), EarlyDecision::Answer);
        assert_eq!(early_decision(&axfr, true), EarlyDecision::Answer);
        assert_eq!(early_decision(&a, false), EarlyDecision::AnswerEarly);
        assert_eq!(early_decision(&axfr, false), EarlyDecision::Wait);
        assert_eq!(early_decision(&msg(5 << 11, 6), false), EarlyDecision::Wait);
    }

    #[tokio::test]
    async fn a_stream_waits_for_the_handshake_and_hears_of_its_failure() {
        let (hs, mut wait) = Handshake::new();
        assert!(!wait.is_complete());
        let other = wait.clone();
        hs.complete();
        assert!(wait.complete().await);
        assert!(other.is_complete());
        let (hs, mut wait) = Handshake::new();
        drop(hs);
        assert!(!wait.complete().await, "a handshake that failed");
    }

    #[test]
    fn each_ticket_resumes_once_and_is_counted() {
        let resumed = Arc::new(AtomicU64::new(0));
        let store = SessionStore::new(resumed.clone());
        assert!(store.put(b"k".to_vec(), b"v".to_vec()));
        assert_eq!(store.take(b"k"), Some(b"v".to_vec()));
        assert_eq!(store.take(b"k"), None, "used once");
        assert_eq!(resumed.load(Relaxed), 1);
    }
}
