//! [`ZoneControl`]: what `dnslb zone list|status|reload|notify|retransfer|
//! refresh` does to a running TS, over its zones, its secondary zones'
//! tasks, its notifier and its [`ZoneLog`]. The HTTP side is
//! `metrics/zone_control.rs`.
//!
//! `reload NAME` reads the zone files as a reload does (a file whose bytes
//! did not change is not compiled again), without reading the config again,
//! and only when no other zone's file changed since it was loaded: else it
//! refuses, naming them, and changes nothing (a reload of the whole, `dnslb
//! reload` or SIGHUP, applies them all). `notify NAME` hands the notifier a
//! NOTIFY of its SOA now to each `notify` target. `refresh NAME` and
//! `retransfer NAME` wake the zone's task for a SOA check (IXFR if newer)
//! or a full AXFR, and wait a while for its outcome.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use tokio::sync::mpsc::UnboundedSender;

use super::log::ZoneLog;
use super::report::{ZoneAction, ZoneEntry, ZoneEvent, ZoneSource, ZoneStatus};
use crate::clock::unix_now;
use crate::ts::TableServer;
use crate::ts::load::{FileMemo, Look};
use crate::ts::secondary::driver::{Secondaries, SecondaryZone};
use crate::ts::secondary::status::AttemptEnd;
use crate::ts::xfr::notify::task::Announce;
use crate::ts::zone::{Zone, key_of};

/// How long a refresh or retransfer waits for the attempt it asked for.
pub const ASK_WAIT: Duration = Duration::from_secs(4);

/// Why a zone command was not done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneCtlError {
    /// The TS serves no zone of that name.
    #[error("no such zone: {0}")]
    NoSuchZone(String),
    /// Not a zone of this kind (a file zone asked to transfer, a secondary
    /// zone asked to reload its file...).
    #[error("{zone}: {why}")]
    Unfit {
        /// The zone.
        zone: String,
        /// Why.
        why: String,
    },
    /// The reload was refused (a bad file: the old zones keep serving).
    #[error("{zone}: reload refused, the zone served is kept: {why}")]
    Refused {
        /// The zone.
        zone: String,
        /// Why.
        why: String,
    },
}

/// The zone control of one running TS.
pub struct ZoneControl {
    ts: Arc<TableServer>,
    secondaries: Arc<Secondaries>,
    announce: UnboundedSender<Announce>,
    log: Arc<ZoneLog>,
}

/// `n` fully qualified, as answers spell it.
fn fqdn(n: &Name) -> String {
    let mut n = n.clone();
    n.set_fqdn(true);
    n.to_ascii()
}

/// `z`'s outcome as an event.
fn event(a: AttemptEnd) -> ZoneEvent {
    ZoneEvent {
        at_unix: a.at_unix,
        ok: a.ok,
        detail: a.result,
        serial: a.serial,
    }
}

impl ZoneControl {
    /// The zone control of `ts`, its secondary zones, the notifier's
    /// sender and its log.
    pub fn new(
        ts: Arc<TableServer>,
        secondaries: Arc<Secondaries>,
        announce: UnboundedSender<Announce>,
        log: Arc<ZoneLog>,
    ) -> Self {
        ZoneControl {
            ts,
            secondaries,
            announce,
            log,
        }
    }

    /// The `api_key` and `control_allow` of the `[[ts]]` it started from
    /// (a TS not started from a config has no control listener: none).
    pub fn gate(&self) -> (Option<String>, Vec<ipnet::IpNet>) {
        match &self.ts.settings().started_from {
            Some((_, c)) => (c.api_key.clone(), c.control_allow.clone()),
            None => (None, Vec::new()),
        }
    }

    /// Where the zone `origin` comes from, and its secondary zone if it is one.
    fn source_of(&self, origin: &Name) -> (ZoneSource, Option<Arc<SecondaryZone>>) {
        let s = self.ts.settings();
        if let Some(sec) = self.secondaries.get(origin) {
            let listed = self.ts.applied().is_secondary(origin)
                || (s.catalog_from.as_ref()).is_some_and(|c| c.name.eq_ignore_root(origin));
            let source = if listed {
                ZoneSource::Secondary
            } else {
                ZoneSource::CatalogMember
            };
            return (source, Some(sec));
        }
        if s.catalog.as_ref().is_some_and(|c| c.eq_ignore_root(origin)) {
            return (ZoneSource::Catalog, None);
        }
        (ZoneSource::File, None)
    }

    /// Every zone served, in the catalog's order, then the secondary zones
    /// not served yet (no copy: waiting for their first transfer).
    pub fn list(&self) -> Vec<ZoneEntry> {
        let catalog = self.ts.catalog();
        let served = (catalog.zones().iter()).map(|z| ZoneEntry {
            name: fqdn(z.origin()),
            serial: z.serial(),
            source: self.source_of(z.origin()).0,
            expired: z.is_expired(),
            served: true,
        });
        let waiting = self.unserved().into_iter().map(|name| ZoneEntry {
            source: self.source_of(&name).0,
            name: fqdn(&name),
            serial: 0,
            expired: false,
            served: false,
        });
        served.chain(waiting).collect()
    }

    /// The secondary zones not served yet, by name.
    fn unserved(&self) -> Vec<Name> {
        let catalog = self.ts.catalog();
        let mut out: Vec<Name> = (self.secondaries.zones().into_iter())
            .filter(|z| catalog.named(&z.name).is_none())
            .map(|z| z.name.clone())
            .collect();
        out.sort();
        out
    }

    /// The zone served as `name`.
    fn zone(&self, name: &Name) -> Result<Zone, ZoneCtlError> {
        (self.ts.catalog().named(name).cloned()).ok_or_else(|| ZoneCtlError::NoSuchZone(fqdn(name)))
    }

    /// The status of every zone served, then of the secondary zones not
    /// served yet.
    pub fn statuses(&self) -> Vec<ZoneStatus> {
        let catalog = self.ts.catalog();
        let index = self.file_index();
        let served = (catalog.zones().iter()).map(|z| self.status_of(z.origin(), Some(z), &index));
        let waiting: Vec<ZoneStatus> = (self.unserved().iter())
            .map(|n| self.status_of(n, None, &index))
            .collect();
        served.chain(waiting).collect()
    }

    /// The status of `name` (a secondary zone not served yet too).
    ///
    /// # Errors
    /// No such zone.
    pub fn status(&self, name: &Name) -> Result<ZoneStatus, ZoneCtlError> {
        match self.zone(name) {
            Ok(z) => Ok(self.status_of(z.origin(), Some(&z), &self.file_index())),
            Err(e) => match self.secondaries.get(name) {
                Some(sec) => Ok(self.status_of(&sec.name, None, &HashMap::new())),
                None => Err(e),
            },
        }
    }

    /// The status of the zone `origin`, served as `z` (`None`: a secondary
    /// zone not served yet).
    fn status_of(
        &self,
        origin: &Name,
        z: Option<&Zone>,
        index: &HashMap<Vec<u8>, Vec<usize>>,
    ) -> ZoneStatus {
        let (source, secondary) = self.source_of(origin);
        let sig = z.and_then(Zone::signature);
        let mut st = ZoneStatus {
            name: fqdn(origin),
            serial: z.map_or(0, Zone::serial),
            source,
            served: z.is_some(),
            expired: z.is_some_and(Zone::is_expired),
            rrsets: z.map_or(0, Zone::rrset_count),
            files: Vec::new(),
            primary: None,
            catalog: None,
            loaded_unix: None,
            last_reload: None,
            last_attempt: None,
            last_transfer: None,
            next_refresh_unix: None,
            expires_unix: None,
            notify: self.log.notifies(origin),
            signed_here: sig.is_some(),
            presigned: z.is_some_and(Zone::is_presigned),
            dnssec_next_unix: sig.map(|s| u64::from(s.refresh_at())),
            key_event_unix: sig.and_then(|s| s.key_event).map(u64::from),
        };
        if let Some(sec) = secondary {
            let s = sec.asks.status();
            st.primary = Some(sec.primary.to_string());
            if source == ZoneSource::CatalogMember {
                st.catalog = (self.ts.settings().catalog_from.as_ref()).map(|c| fqdn(&c.name));
            }
            st.last_attempt = s.last_attempt.map(event);
            st.last_transfer = s.last_transfer.map(event);
            st.next_refresh_unix = s.next_check_unix;
            st.expires_unix = s.expires_unix;
        } else if source == ZoneSource::File {
            st.files = (self.files_of(origin, index).1.iter())
                .map(|f| f.display().to_string())
                .collect();
            let (at, last) = self.log.loaded(origin);
            st.loaded_unix = Some(at);
            st.last_reload = last;
        }
        st
    }

    /// The zone files in force by the zone they give (lower-cased wire
    /// origin: their indexes in `zones`, in order), by the last load's memo
    /// (a PROJ table gives the zone of `origin`): one pass over the files.
    fn file_index(&self) -> HashMap<Vec<u8>, Vec<usize>> {
        let applied = self.ts.applied();
        let proj = key_of(&applied.origin).ok();
        let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        if let Some(memo) = self.memo() {
            for (i, o) in memo.origins.iter().enumerate().take(applied.zones.len()) {
                let of = o.as_ref().map(|k| k.to_vec()).or_else(|| proj.clone());
                if let Some(k) = of {
                    index.entry(k).or_default().push(i);
                }
            }
        }
        index
    }

    /// The files of `origin` by `index`: their indexes, and their paths.
    fn files_of(
        &self,
        origin: &Name,
        index: &HashMap<Vec<u8>, Vec<usize>>,
    ) -> (Vec<usize>, Vec<PathBuf>) {
        let applied = self.ts.applied();
        let mine = key_of(origin)
            .ok()
            .and_then(|k| index.get(&k).cloned())
            .unwrap_or_default();
        let files = mine
            .iter()
            .filter_map(|&i| applied.zones.get(i).cloned())
            .collect();
        (mine, files)
    }

    /// What the last load saw of the zone files.
    fn memo(&self) -> Option<FileMemo> {
        let memo = self.ts.sources.lock();
        memo.unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the files of `name` again (blocking: off the runtime's
    /// threads), when no other zone's file changed; NOTIFYs it when it
    /// changed.
    ///
    /// # Errors
    /// No such zone, not a file zone, other files changed, or a bad file.
    pub fn reload(&self, name: &Name) -> Result<ZoneAction, ZoneCtlError> {
        let z = self.zone(name)?;
        let unfit = |why: &str| ZoneCtlError::Unfit {
            zone: fqdn(z.origin()),
            why: why.to_owned(),
        };
        match self.source_of(z.origin()).0 {
            ZoneSource::File => {}
            ZoneSource::Catalog => {
                return Err(unfit(
                    "the catalog zone is made of the zones of the files, not read from one: reload those",
                ));
            }
            _ => {
                return Err(unfit(
                    "a secondary zone has no file to read: use refresh (SOA check) or retransfer (AXFR)",
                ));
            }
        }
        let others = self.others_changed(z.origin());
        if !others.is_empty() {
            return Err(unfit(&format!(
                "the files of other zones changed too ({}): a reload of one zone would apply them; reload the whole (dnslb reload, or SIGHUP) to apply them all",
                others.join(", ")
            )));
        }
        let before = z.serial();
        let now = unix_now();
        match self.ts.reload() {
            Ok(r) => {
                let mut touched = r.changed_zones.clone();
                touched.extend(r.added.iter().cloned());
                let detail = format!("changed={} zones={}", r.changed, r.zones);
                self.log.reloaded(now, true, &touched, &detail);
                self.announce(&touched);
                let after = self.ts.catalog().named(z.origin()).map(Zone::serial);
                let detail = match after {
                    Some(a) if a != before => format!("reloaded: serial {before} -> {a}"),
                    _ => format!("unchanged: its files hold what was loaded (serial {before})"),
                };
                Ok(self.action(&z, "reload", true, detail, (Some(before), after)))
            }
            Err(err) => {
                self.log.reloaded(now, false, [], &err.to_string());
                Err(ZoneCtlError::Refused {
                    zone: fqdn(z.origin()),
                    why: err.to_string(),
                })
            }
        }
    }

    /// The zones (or, unknown, the files) other than `origin`'s whose files
    /// changed since they were loaded.
    fn others_changed(&self, origin: &Name) -> Vec<String> {
        let applied = self.ts.applied();
        let Some(memo) = self.memo() else {
            return Vec::new();
        };
        let mine = self.files_of(origin, &self.file_index()).0;
        let proj = key_of(&applied.origin).ok();
        let mut out: Vec<String> = Vec::new();
        for (i, file) in applied.zones.iter().enumerate() {
            if mine.contains(&i) {
                continue;
            }
            let one = std::slice::from_ref(file);
            let same = memo.seen.get(i).cloned().flatten().is_some_and(|seen| {
                let m = FileMemo {
                    seen: vec![Some(seen)],
                    origins: vec![None],
                };
                m.unchanged(one, &Look::now(one))
            });
            if same {
                continue;
            }
            let of = memo
                .origins
                .get(i)
                .cloned()
                .flatten()
                .map(|k| k.to_vec())
                .or(proj.clone());
            let zone = (self.ts.catalog().zones().iter())
                .find(|z| of.as_deref() == Some(z.origin_wire()))
                .map(|z| fqdn(z.origin()));
            let said = zone.unwrap_or_else(|| file.display().to_string());
            if !out.contains(&said) {
                out.push(said);
            }
        }
        out
    }

    /// Hands the notifier a NOTIFY of each of `zones` to the `notify`
    /// targets (as a reload does).
    fn announce(&self, zones: &[Name]) -> usize {
        let targets = &self.ts.settings().notify;
        if targets.is_empty() {
            return 0;
        }
        let catalog = self.ts.catalog();
        for zone in zones {
            let soa = catalog.named(zone).map(|z| {
                let rr = z.soa_rr();
                Record::from_rdata(rr.name.clone(), rr.ttl, rr.data.clone())
            });
            let _ = self.announce.send(Announce {
                zone: zone.clone(),
                soa,
                targets: targets.clone(),
                key: self.ts.xfr_key(),
            });
        }
        targets.len()
    }

    /// NOTIFYs `name` to the `notify` targets now.
    ///
    /// # Errors
    /// No such zone, or no target.
    pub fn notify(&self, name: &Name) -> Result<ZoneAction, ZoneCtlError> {
        let z = self.zone(name)?;
        let targets = &self.ts.settings().notify;
        if targets.is_empty() {
            return Err(ZoneCtlError::Unfit {
                zone: fqdn(z.origin()),
                why: "this TS has no notify targets (notify in its [[ts]])".into(),
            });
        }
        self.announce(std::slice::from_ref(z.origin()));
        let to: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let detail = format!(
            "NOTIFY of serial {} sent to {}; `dnslb zone status` counts the acknowledgments",
            z.serial(),
            to.join(", ")
        );
        let serial = Some(z.serial());
        Ok(self.action(&z, "notify", true, detail, (serial, serial)))
    }

    /// Asks the primary of `name` now: a SOA check (IXFR if newer), or
    /// with `full` a whole AXFR; waits up to [`ASK_WAIT`] for the outcome.
    ///
    /// # Errors
    /// No such zone, or not a secondary zone.
    pub async fn ask_primary(&self, name: &Name, full: bool) -> Result<ZoneAction, ZoneCtlError> {
        let what = if full { "retransfer" } else { "refresh" };
        let Some(sec) = self.secondaries.get(name) else {
            let z = self.zone(name)?;
            return Err(ZoneCtlError::Unfit {
                zone: fqdn(z.origin()),
                why: format!(
                    "not a secondary zone: it has no primary to {what} from (reload reads a file zone again)"
                ),
            });
        };
        let before = self.ts.catalog().named(name).map(Zone::serial);
        let ticket = sec.ask_now(full);
        let zone = fqdn(&sec.name);
        let outcome = sec.asks.wait(ticket, ASK_WAIT).await;
        let after = self.ts.catalog().named(name).map(Zone::serial);
        let (done, detail) = match outcome {
            Some(a) if a.ok => (true, a.result),
            Some(a) => (false, format!("failed: {}", a.result)),
            None => (
                false,
                format!(
                    "asked of {}; no outcome within {} s (a transfer may wait its turn or be long): `dnslb zone status {zone}` shows it",
                    sec.primary,
                    ASK_WAIT.as_secs()
                ),
            ),
        };
        Ok(ZoneAction {
            zone,
            action: what.into(),
            done,
            detail,
            serial_before: before,
            serial_after: after,
        })
    }

    fn action(
        &self,
        z: &Zone,
        action: &str,
        done: bool,
        detail: String,
        (serial_before, serial_after): (Option<u32>, Option<u32>),
    ) -> ZoneAction {
        ZoneAction {
            zone: fqdn(z.origin()),
            action: action.into(),
            done,
            detail,
            serial_before,
            serial_after,
        }
    }
}
