//! What a NOTIFY does to a secondary zone (RFC 1996 §3, RFC 8945): taken
//! only from the configured primary's address (any port: primaries send
//! from an ephemeral one) and, when the zone has a key, only signed with
//! it; answered (NOERROR, REFUSED or NOTAUTH with the TSIG error), the
//! answer signed when the NOTIFY was. Pure: the caller wakes the zone.
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};

use crate::dns::tsig::{Checked, Key, Signer, verify_request, verify_without_key};

/// What became of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// From the primary, signed as required: the zone is checked now.
    Accepted,
    /// From another address than the zone's primary.
    NotPrimary,
    /// Unsigned, or badly signed, while the zone has a key (or signed
    /// while it has none).
    BadTsig,
    /// For no zone this TS is secondary for.
    NoZone,
}

impl NotifyOutcome {
    /// A word for logs and counters.
    pub fn label(self) -> &'static str {
        match self {
            NotifyOutcome::Accepted => "accepted",
            NotifyOutcome::NotPrimary => "not-primary",
            NotifyOutcome::BadTsig => "bad-tsig",
            NotifyOutcome::NoZone => "no-zone",
        }
    }
}

/// The answer to the NOTIFY `raw` from `from`, for a zone whose primary is
/// at `primary` and whose key is `key` (`None`: no zone of that name),
/// checked at `now`; `None` when it cannot be read at all (dropped).
pub fn judge(
    raw: &[u8],
    from: IpAddr,
    zone: Option<(IpAddr, Option<&Arc<Key>>)>,
    now: u64,
) -> Option<(NotifyOutcome, Vec<u8>)> {
    let key = zone.and_then(|(_, k)| k);
    let checked = match key {
        Some(k) => verify_request(raw, k, now),
        None => verify_without_key(raw),
    };
    let (plain, signer, rejected) = match checked {
        Checked::Unreadable => return None,
        Checked::Unsigned => (raw.to_vec(), None, None),
        Checked::Signed(v) => (
            v.unsigned(raw),
            key.map(|k| Signer::answer(k.clone(), &v)),
            None,
        ),
        Checked::Rejected(r) => (r.unsigned(raw)?, None, Some(r)),
    };
    let msg = Message::from_vec(&plain).ok()?;
    if msg.metadata.op_code != OpCode::Notify || msg.metadata.message_type != MessageType::Query {
        return None;
    }
    let verdict = match zone {
        None => NotifyOutcome::NoZone,
        Some((primary, _)) if primary != from => NotifyOutcome::NotPrimary,
        Some(_) if rejected.is_some() => NotifyOutcome::BadTsig,
        Some((_, Some(_))) if signer.is_none() => NotifyOutcome::BadTsig,
        Some(_) => NotifyOutcome::Accepted,
    };
    let rcode = match verdict {
        NotifyOutcome::Accepted => ResponseCode::NoError,
        NotifyOutcome::BadTsig => ResponseCode::NotAuth,
        NotifyOutcome::NotPrimary | NotifyOutcome::NoZone => ResponseCode::Refused,
    };
    let mut answer = Message::new(msg.metadata.id, MessageType::Response, OpCode::Notify);
    answer.metadata.authoritative = verdict == NotifyOutcome::Accepted;
    answer.metadata.response_code = rcode;
    answer.add_queries(msg.queries.iter().cloned());
    let mut bytes = answer.to_vec().ok()?;
    match (rejected, signer) {
        (Some(r), _) => r.answer(key.map(|k| &**k), &mut bytes, now),
        (None, Some(mut s)) => s.sign_at(&mut bytes, now),
        (None, None) => {}
    }
    Some((verdict, bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dns::tsig::{Algorithm, ResponseCheck, verify_response};
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    const NOW: u64 = 1_800_000_000;

    fn notify() -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Notify);
        m.add_query(Query::query(
            Name::from_ascii("z.test.").unwrap(),
            RecordType::SOA,
        ));
        m.to_vec().unwrap()
    }

    fn key(secret: &[u8]) -> Arc<Key> {
        Arc::new(Key::new("xfr", Algorithm::HmacSha256, secret).unwrap())
    }

    fn rcode(bytes: &[u8]) -> ResponseCode {
        Message::from_vec(bytes)
            .map(|m| m.metadata.response_code)
            .unwrap_or(ResponseCode::NotAuth)
    }

    #[test]
    fn a_notify_is_taken_only_from_the_primary() {
        let primary: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.8".parse().unwrap();
        let (v, a) = judge(&notify(), primary, Some((primary, None)), NOW).unwrap();
        assert_eq!(
            (v, rcode(&a)),
            (NotifyOutcome::Accepted, ResponseCode::NoError)
        );
        let (v, a) = judge(&notify(), other, Some((primary, None)), NOW).unwrap();
        assert_eq!(
            (v, rcode(&a)),
            (NotifyOutcome::NotPrimary, ResponseCode::Refused)
        );
        let (v, _) = judge(&notify(), primary, None, NOW).unwrap();
        assert_eq!(v, NotifyOutcome::NoZone);
        // A query is no NOTIFY.
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_ascii("z.test.").unwrap(),
            RecordType::SOA,
        ));
        assert!(judge(&q.to_vec().unwrap(), primary, Some((primary, None)), NOW).is_none());
    }

    #[test]
    fn with_a_key_only_a_notify_signed_with_it_is_taken_and_answered_signed() {
        let primary: IpAddr = "127.0.0.9".parse().unwrap();
        let k = key(b"secretsecretsecretsecretsecret12");
        let zone = Some((primary, Some(&k)));
        let (v, _) = judge(&notify(), primary, zone, NOW).unwrap();
        assert_eq!(v, NotifyOutcome::BadTsig, "unsigned");
        let mut signed = notify();
        let mut s = Signer::request(k.clone());
        s.sign_at(&mut signed, NOW);
        let (v, a) = judge(&signed, primary, zone, NOW).unwrap();
        assert_eq!(v, NotifyOutcome::Accepted);
        assert_eq!(
            verify_response(&a, &k, s.last_mac(), NOW),
            Ok(ResponseCheck::Signed(0))
        );
        // Signed with another secret: NOTAUTH.
        let wrong = key(b"another secret, 32 bytes long...");
        let mut bad = notify();
        Signer::request(wrong).sign_at(&mut bad, NOW);
        let (v, a) = judge(&bad, primary, zone, NOW).unwrap();
        assert_eq!(v, NotifyOutcome::BadTsig);
        assert_eq!(a[3] & 0x0f, 9, "NOTAUTH");
    }
}
