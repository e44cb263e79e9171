//! NOTIFY (RFC 1996) from a TS to its secondaries, the decisions: how long
//! to wait before sending again ([`notify_wait`]), what a reply says
//! ([`judge_notify_reply`]), and what one pending NOTIFY of a zone to a
//! secondary does on each event ([`PendingNotify`]: a new serial, a reply, a
//! wait ended). [`super::task`] sends them (signed with `xfr_key`).

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
    /// No acknowledgement after every try, but the secondary answered a
    /// signed NOTIFY with an unsigned refusal naming this TSIG error
    /// (BADSIG, BADKEY: RFC 8945 §5.3.2): its key is not ours. Unsigned, so
    /// unverified: it never ends the tries by itself (anyone could send it),
    /// it only says why they went unanswered.
    TsigRefused(u16),
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

/// What to do next with a pending NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyStep {
    /// Send a NOTIFY announcing `serial` now (a new ID), then wait `wait`
    /// for its answer.
    Send {
        /// The serial the NOTIFY carries (its SOA in the answer section).
        serial: u32,
        /// How long to wait for the answer before the next try.
        wait: std::time::Duration,
    },
    /// Nothing now: keep waiting for the answer to the try in flight.
    Wait,
    /// Over: the NOTIFY is forgotten with this outcome.
    Done(Notified),
}

/// The one NOTIFY of a zone to a secondary not yet answered: at most one
/// per (zone, secondary), however many reloads change the zone meanwhile.
/// `policy` is the back-off (try number to wait, `None` past the last:
/// [`notify_wait`] in service).
///
/// A new serial while one is pending does not restart the back-off: the
/// try in flight was not answered, so the secondary is down, restarting or
/// unreachable, and the next try (when the current wait ends) announces the
/// newest serial. Restarting it on every change would send a NOTIFY per
/// reload to a dead secondary, and never give up while reloads go on. A
/// secondary that answers a try for an older serial is alive: the newest
/// is sent to it at once, with the back-off restarted. A serial that came
/// after the last try is announced by a fresh round of tries when the last
/// wait ends (no change is left unannounced); a round that announced the
/// newest serial ends given up, and the next change starts a fresh NOTIFY.
/// A secondary that never answers thus gets at most the tries of one round
/// per round's length (5 in 31 s), however often the zone changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotify {
    /// The serial to announce: the zone's newest.
    latest: u32,
    /// The serial the try in flight announced.
    sent: u32,
    /// Tries sent so far, less one.
    tries: u32,
}

impl PendingNotify {
    /// A NOTIFY of `serial`: its first try.
    pub fn start(
        serial: u32,
        policy: impl Fn(u32) -> Option<std::time::Duration>,
    ) -> (PendingNotify, NotifyStep) {
        let p = PendingNotify {
            latest: serial,
            sent: serial,
            tries: 0,
        };
        let step = match policy(0) {
            Some(wait) => NotifyStep::Send { serial, wait },
            None => NotifyStep::Done(Notified::NoReply),
        };
        (p, step)
    }

    /// The zone changed again, to `serial`: announced by the next try (see
    /// the type's doc); nothing is sent now.
    pub fn renew(&mut self, serial: u32) -> NotifyStep {
        self.latest = serial;
        NotifyStep::Wait
    }

    /// The wait for the try in flight ended without an answer: the next
    /// try, with the newest serial; past the last, given up, unless a newer
    /// serial came after the last try: then a fresh round announces it.
    pub fn timed_out(&mut self, policy: impl Fn(u32) -> Option<std::time::Duration>) -> NotifyStep {
        self.tries = self.tries.saturating_add(1);
        match policy(self.tries) {
            Some(wait) => self.send(wait),
            None if self.sent != self.latest => {
                self.tries = 0;
                match policy(0) {
                    Some(wait) => self.send(wait),
                    None => NotifyStep::Done(Notified::NoReply),
                }
            }
            None => NotifyStep::Done(Notified::NoReply),
        }
    }

    /// The try in flight was answered (`judged` by [`judge_notify_reply`]).
    pub fn answered(
        &mut self,
        judged: Notified,
        policy: impl Fn(u32) -> Option<std::time::Duration>,
    ) -> NotifyStep {
        match judged {
            Notified::Acknowledged if self.sent != self.latest => {
                // Alive, but told of an older serial: the newest at once.
                self.tries = 0;
                match policy(0) {
                    Some(wait) => self.send(wait),
                    None => NotifyStep::Done(Notified::Acknowledged),
                }
            }
            done => NotifyStep::Done(done),
        }
    }

    fn send(&mut self, wait: std::time::Duration) -> NotifyStep {
        self.sent = self.latest;
        NotifyStep::Send {
            serial: self.latest,
            wait,
        }
    }
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
        Notified::TsigRefused(code) => {
            let error = tsig_error_name(code);
            tracing::warn!(
                ts,
                %zone,
                %target,
                %error,
                "notify refused by the secondary for its TSIG (its answer, unsigned, was not taken): check the key's name, algorithm and secret on both sides"
            );
        }
    }
}

/// The mnemonic of the TSIG error `code` (RFC 8945 §3), or the number.
fn tsig_error_name(code: u16) -> String {
    crate::dns::tsig::TsigError::ALL
        .into_iter()
        .find(|e| e.code() == code)
        .map_or_else(|| code.to_string(), |e| e.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsig_refusal_is_named() {
        assert_eq!(tsig_error_name(16), "BADSIG");
        assert_eq!(tsig_error_name(17), "BADKEY");
        assert_eq!(tsig_error_name(99), "99");
    }

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

    fn secs(s: u64) -> std::time::Duration {
        std::time::Duration::from_secs(s)
    }

    fn send(serial: u32, wait: u64) -> NotifyStep {
        NotifyStep::Send {
            serial,
            wait: secs(wait),
        }
    }

    /// The tries left, `serial` sent after each of `waits`, then none.
    fn last_tries(p: &mut PendingNotify, serial: u32, waits: &[u64]) {
        for &wait in waits {
            assert_eq!(p.timed_out(notify_wait), send(serial, wait));
        }
        assert_eq!(
            p.timed_out(notify_wait),
            NotifyStep::Done(Notified::NoReply)
        );
    }

    #[test]
    fn a_silent_secondary_gets_five_tries_then_the_notify_is_given_up() {
        let (mut p, first) = PendingNotify::start(10, notify_wait);
        assert_eq!(first, send(10, 1));
        let next: Vec<NotifyStep> = (0..5).map(|_| p.timed_out(notify_wait)).collect();
        assert_eq!(
            next,
            [
                send(10, 2),
                send(10, 4),
                send(10, 8),
                send(10, 16),
                NotifyStep::Done(Notified::NoReply)
            ]
        );
    }

    #[test]
    fn a_new_serial_while_pending_is_sent_by_the_next_try_without_restarting_the_back_off() {
        let (mut p, _) = PendingNotify::start(10, notify_wait);
        assert_eq!(p.timed_out(notify_wait), send(10, 2));
        assert_eq!(p.timed_out(notify_wait), send(10, 4));
        // Thirty reloads: nothing sent now, one NOTIFY pending still.
        for serial in 11..=40 {
            assert_eq!(p.renew(serial), NotifyStep::Wait);
        }
        // The newest serial.
        last_tries(&mut p, 40, &[8, 16]);
    }

    #[test]
    fn a_serial_after_the_last_try_gets_a_fresh_round_when_the_last_wait_ends() {
        let (mut p, _) = PendingNotify::start(10, notify_wait);
        for _ in 0..4 {
            p.timed_out(notify_wait);
        }
        // The last try (serial 10) is in flight; the zone changes twice.
        p.renew(11);
        assert_eq!(p.renew(12), NotifyStep::Wait);
        assert_eq!(p.timed_out(notify_wait), send(12, 1), "not dropped");
        last_tries(&mut p, 12, &[2, 4, 8, 16]);
    }

    #[test]
    fn an_answer_for_an_older_serial_sends_the_newest_at_once() {
        let (mut p, _) = PendingNotify::start(10, notify_wait);
        assert_eq!(p.timed_out(notify_wait), send(10, 2));
        p.renew(11);
        assert_eq!(
            p.answered(Notified::Acknowledged, notify_wait),
            send(11, 1),
            "alive: told at once, back-off restarted"
        );
        assert_eq!(
            p.answered(Notified::Acknowledged, notify_wait),
            NotifyStep::Done(Notified::Acknowledged)
        );
    }

    #[test]
    fn a_rejection_ends_the_notify_whatever_the_serial() {
        let (mut p, _) = PendingNotify::start(10, notify_wait);
        p.renew(11);
        assert_eq!(
            p.answered(Notified::Rejected(5), notify_wait),
            NotifyStep::Done(Notified::Rejected(5))
        );
        let (_, none) = PendingNotify::start(10, |_| None);
        assert_eq!(none, NotifyStep::Done(Notified::NoReply), "no tries at all");
    }
}
