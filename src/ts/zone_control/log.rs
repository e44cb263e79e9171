//! What the TS remembers of its zones' events since start, for `dnslb zone
//! status` ([`ZoneLog`]): when each file zone's version in force was loaded
//! (the start, or the reload that changed it), the last reload of the zone
//! files and its outcome, and the NOTIFYs of each zone by target and
//! outcome. Bounded by the zones and the `notify` targets; a zone no longer
//! served keeps its lines until it is served again (they are small).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use hickory_proto::rr::Name;

use super::report::{NotifyTally, ZoneEvent};
use crate::dns;
use crate::ts::xfr::notify::policy::Notified;

/// The zones' events since start.
#[derive(Debug)]
pub struct ZoneLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    started_unix: u64,
    /// When each zone changed by a reload since start was loaded.
    loaded: HashMap<Name, u64>,
    last_reload: Option<ZoneEvent>,
    notify: HashMap<Name, Vec<(SocketAddr, NotifyTally)>>,
}

/// `name` as the log keys it.
fn key(name: &Name) -> Name {
    let mut k = name.to_lowercase();
    k.set_fqdn(true);
    k
}

/// The words of a NOTIFY's outcome.
pub fn outcome_words(done: Notified) -> String {
    match done {
        Notified::Acknowledged => "acknowledged".to_owned(),
        Notified::Rejected(code) => {
            let rcode = dns::rcode_mnemonic(u16::from(code))
                .map_or_else(|| code.to_string(), str::to_owned);
            format!("rejected ({rcode})")
        }
        Notified::NoReply => "no reply".to_owned(),
        Notified::TsigRefused(_) => "refused for its TSIG".to_owned(),
    }
}

impl ZoneLog {
    /// A log of a TS started at `started_unix`.
    pub fn new(started_unix: u64) -> Self {
        ZoneLog {
            inner: Mutex::new(Inner {
                started_unix,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A reload of the zone files at `at_unix`: applied (`zones` the ones
    /// it changed or added) or refused, `detail` what it said.
    pub fn reloaded<'a>(
        &self,
        at_unix: u64,
        applied: bool,
        zones: impl IntoIterator<Item = &'a Name>,
        detail: &str,
    ) {
        let mut l = self.lock();
        if applied {
            for z in zones {
                l.loaded.insert(key(z), at_unix);
            }
        }
        l.last_reload = Some(ZoneEvent {
            at_unix,
            ok: applied,
            detail: detail.to_owned(),
            serial: None,
        });
    }

    /// A NOTIFY of `zone` to `target` ended at `at_unix` with `done`.
    pub fn notified(&self, zone: &Name, target: SocketAddr, done: Notified, at_unix: u64) {
        let mut l = self.lock();
        let targets = l.notify.entry(key(zone)).or_default();
        let i = match targets.iter().position(|(t, _)| *t == target) {
            Some(i) => i,
            None => {
                let tally = NotifyTally {
                    target: target.to_string(),
                    ..NotifyTally::default()
                };
                targets.push((target, tally));
                targets.len() - 1
            }
        };
        let t = &mut targets[i].1;
        t.sent += 1;
        t.acked += u64::from(done == Notified::Acknowledged);
        t.last = outcome_words(done);
        t.last_unix = at_unix;
    }

    /// When the version of `zone` in force was loaded from its files (the
    /// start, unless a reload changed it since), and the last reload.
    pub fn loaded(&self, zone: &Name) -> (u64, Option<ZoneEvent>) {
        let l = self.lock();
        let at = l.loaded.get(&key(zone)).copied().unwrap_or(l.started_unix);
        (at, l.last_reload.clone())
    }

    /// The NOTIFYs of `zone`, by target.
    pub fn notifies(&self, zone: &Name) -> Vec<NotifyTally> {
        let l = self.lock();
        (l.notify.get(&key(zone)).into_iter().flatten())
            .map(|(_, t)| t.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_loaded_at_start_until_a_reload_changes_it_and_notifies_are_tallied() {
        let log = ZoneLog::new(100);
        let a: Name = "a.test.".parse().unwrap();
        let b: Name = "B.test".parse().unwrap();
        assert_eq!(log.loaded(&a), (100, None));
        log.reloaded(200, true, [&b], "changed=1");
        assert_eq!(log.loaded(&a).0, 100);
        let (at, last) = log.loaded(&"b.TEST.".parse().unwrap());
        assert_eq!(at, 200);
        assert!(last.unwrap().ok);
        log.reloaded(300, false, [&a], "bad line");
        let (at, last) = log.loaded(&a);
        assert_eq!(at, 100, "a refused reload loads nothing");
        assert_eq!(last.unwrap().detail, "bad line");
        let t: SocketAddr = "127.0.0.1:53".parse().unwrap();
        log.notified(&a, t, Notified::Acknowledged, 400);
        log.notified(&a, t, Notified::Rejected(5), 401);
        let n = log.notifies(&a);
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].sent, n[0].acked), (2, 1));
        assert_eq!(n[0].last, "rejected (REFUSED)");
        assert!(log.notifies(&b).is_empty());
    }
}
