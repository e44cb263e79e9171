//! The secondary zones of one TS at work: their shared state
//! ([`Secondaries`]: each zone's primary, key and wake-up, and the NOTIFY
//! answer over them), and one task per zone ([`run`]) that reads the copy
//! on disk, asks the primary when the timers or a NOTIFY say so, swaps
//! each new version in atomically, writes it to `state_dir` and expires the
//! zone after the SOA EXPIRE without contact. Its owner stops it with a
//! cancellation token.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::client::{Limits, XfrError, fetch};
use super::notify::{NotifyOutcome, judge};
use super::records::{Answer, Rec, ZoneCopy};
use super::state;
use super::timers::{RefreshStep, Schedule, SoaTimers};
use crate::dns::tsig::{Key, unix_now};
use crate::ts::metrics::SecondaryCounters;
use crate::ts::serials::serial_newer;
use crate::ts::settings::TsSettings;
use crate::ts::source::{SourceRecord, ZoneError};
use crate::ts::table_server::TableServer;
use crate::ts::zone::Zone;

/// One secondary zone: where it comes from, and what wakes its task.
#[derive(Debug)]
pub struct SecondaryZone {
    /// The zone.
    pub name: Name,
    /// Its primary.
    pub primary: SocketAddr,
    /// Its transfer key.
    pub key: Option<Arc<Key>>,
    wake: Notify,
}

impl SecondaryZone {
    /// The zone `name` of `primary`, transferred with `key`.
    pub fn new(name: Name, primary: SocketAddr, key: Option<Arc<Key>>) -> Self {
        SecondaryZone {
            name,
            primary,
            key,
            wake: Notify::new(),
        }
    }
}

/// The secondary zones of one TS, by lower-cased name: those of its
/// `zones`, and the members of the catalog it consumes as they come and
/// go.
#[derive(Debug, Default)]
pub struct Secondaries {
    zones: std::sync::RwLock<HashMap<Name, Arc<SecondaryZone>>>,
}

/// The key of `name` in [`Secondaries`].
fn key_of(name: &Name) -> Name {
    let mut k = name.to_lowercase();
    k.set_fqdn(true);
    k
}

impl Secondaries {
    /// The secondary zones of `settings` (the catalog zone of
    /// `catalog_from` among them), their keys read.
    ///
    /// # Errors
    /// A key that cannot be read, named.
    pub fn load(settings: &TsSettings) -> Result<Self, String> {
        let out = Secondaries::default();
        for s in settings.secondaries.iter().chain(&settings.catalog_from) {
            let key = load_key(s.key.as_ref())?;
            out.add(SecondaryZone::new(s.name.clone(), s.primary, key));
        }
        Ok(out)
    }

    /// The zones.
    pub fn zones(&self) -> Vec<Arc<SecondaryZone>> {
        self.read().values().cloned().collect()
    }

    /// The zone `name`, if it is one.
    pub fn get(&self, name: &Name) -> Option<Arc<SecondaryZone>> {
        self.read().get(&key_of(name)).cloned()
    }

    /// Adds `zone` (in place of one of its name), and hands it back shared.
    pub fn add(&self, zone: SecondaryZone) -> Arc<SecondaryZone> {
        let zone = Arc::new(zone);
        let mut map = self
            .zones
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(key_of(&zone.name), zone.clone());
        zone
    }

    /// Removes the zone `name` (its NOTIFYs are refused from now on).
    pub fn remove(&self, name: &Name) {
        let mut map = self
            .zones
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&key_of(name));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Name, Arc<SecondaryZone>>> {
        self.zones
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer to the NOTIFY `raw` from `from` (see [`judge`]); an
    /// accepted one wakes its zone's task. Counted in `counters`.
    pub fn answer_notify(
        &self,
        raw: &[u8],
        from: IpAddr,
        counters: &SecondaryCounters,
    ) -> Option<Vec<u8>> {
        let name = question_name(raw)?;
        let zone = self.get(&name);
        let theirs = zone.as_ref().map(|z| (z.primary.ip(), z.key.as_ref()));
        let (verdict, answer) = judge(raw, from, theirs, unix_now())?;
        match (verdict, zone) {
            (NotifyOutcome::Accepted, Some(z)) => {
                counters.notify_accepted.fetch_add(1, Relaxed);
                z.wake.notify_one();
            }
            _ => {
                counters.notify_refused.fetch_add(1, Relaxed);
                warn!(zone = %name, %from, why = verdict.label(), "NOTIFY refused");
            }
        }
        Some(answer)
    }
}

/// The key `kc` read, if any.
///
/// # Errors
/// A key that cannot be read, named.
pub fn load_key(kc: Option<&crate::config::KeyConfig>) -> Result<Option<Arc<Key>>, String> {
    kc.map(|kc| {
        kc.load()
            .map(Arc::new)
            .map_err(|e| format!("[[key]] {:?}: {e}", kc.name))
    })
    .transpose()
}

/// The name of the first question of `raw`.
fn question_name(raw: &[u8]) -> Option<Name> {
    if raw.get(4..6)? == [0, 0] {
        return None;
    }
    let mut dec = BinDecoder::new(raw.get(12..)?);
    Name::read(&mut dec).ok()
}

/// The zone served for `copy`, transferred from `primary`.
///
/// # Errors
/// Records the zone cannot hold (outside it, a CNAME beside data...).
pub fn compile(copy: &ZoneCopy, primary: SocketAddr) -> Result<Zone, ZoneError> {
    let records = std::iter::once(&copy.soa)
        .chain(copy.records())
        .enumerate()
        .map(|(i, r)| SourceRecord {
            name: r.name.clone(),
            ttl: r.ttl,
            data: r.data.clone(),
            line: i + 1,
        })
        .collect();
    let file = PathBuf::from(format!("transfer from {primary}"));
    let soa = match &copy.soa.data {
        RData::SOA(s) => s.clone(),
        _ => return Err(ZoneError::line(&file, 1, "the first record is no SOA")),
    };
    let ttl = copy.soa.ttl;
    Zone::build(
        copy.origin().clone(),
        vec![(0, records)],
        &[file],
        |_, _| (ttl, soa),
    )
}

/// The SOA timers of `copy`.
fn timers_of(copy: &ZoneCopy) -> SoaTimers {
    match &copy.soa.data {
        RData::SOA(s) => {
            let u = |v: i32| u32::try_from(v).unwrap_or(0);
            SoaTimers::new(u(s.refresh), u(s.retry), u(s.expire))
        }
        _ => SoaTimers::new(0, 0, 0),
    }
}

/// What one attempt brought.
enum Outcome {
    UpToDate,
    New(Box<(ZoneCopy, Zone)>, &'static str),
}

/// Asks the primary of `zone` once: IXFR from `ours` (AXFR when there is
/// none, or when the IXFR does not apply), every answer checked whole
/// before anything is kept.
async fn attempt(
    zone: &SecondaryZone,
    ours: Option<&ZoneCopy>,
    limits: Limits,
    counters: &SecondaryCounters,
) -> Result<Outcome, XfrError> {
    let soa: Option<&Rec> = ours.map(|c| &c.soa);
    let fetched = fetch(zone.primary, &zone.name, soa, zone.key.clone(), limits).await?;
    let applied = match (fetched.answer, ours) {
        (Answer::UpToDate(_), _) => return Ok(Outcome::UpToDate),
        (Answer::Full(c), _) => Ok((c, "axfr")),
        (Answer::Incremental(changes, _), Some(o)) => o.apply(&changes).map(|c| (c, "ixfr")),
        (Answer::Incremental(..), None) => {
            return Err(XfrError::Stray("changes answered to an AXFR"));
        }
    };
    let (copy, how) = match applied {
        Ok(done) => done,
        Err(err) => {
            counters.ixfr_refused.fetch_add(1, Relaxed);
            warn!(zone = %zone.name, %err, "IXFR refused whole, falling back to AXFR");
            let full = fetch(zone.primary, &zone.name, None, zone.key.clone(), limits).await?;
            match full.answer {
                Answer::Full(c) => (c, "axfr"),
                _ => return Err(XfrError::Stray("an AXFR answered with no whole zone")),
            }
        }
    };
    if !copy.origin().eq_ignore_root(&zone.name) {
        return Err(XfrError::Stray("another zone's SOA"));
    }
    if let Some(o) = ours {
        if copy.serial() == o.serial() {
            return Ok(Outcome::UpToDate);
        }
        if !serial_newer(copy.serial(), o.serial()) {
            return Err(XfrError::Stray("the primary's serial is older than ours"));
        }
    }
    let compiled = compile(&copy, zone.primary).map_err(|e| XfrError::Unusable(e.to_string()))?;
    Ok(Outcome::New(Box::new((copy, compiled)), how))
}

/// Where a zone's task reads and writes, and how far it goes.
#[derive(Debug, Clone)]
pub struct Driving {
    /// `state_dir`: the last good copies.
    pub state_dir: Option<PathBuf>,
    /// Each transfer's bounds.
    pub limits: Limits,
    /// Told each copy served (read from disk, or transferred): the
    /// catalog zone's, for its consumer.
    pub copies: Option<tokio::sync::watch::Sender<Option<Arc<ZoneCopy>>>>,
}

impl Driving {
    /// Tells `copies` of `copy`, when someone listens.
    fn tell(&self, copy: &ZoneCopy) {
        if let Some(tx) = &self.copies {
            tx.send_replace(Some(Arc::new(copy.clone())));
        }
    }
}

/// Seconds since `start`, the clock of [`Schedule`].
fn secs(start: Instant) -> u64 {
    start.elapsed().as_secs()
}

/// The copy of `zone` in `dir`, served at once when it compiles.
fn from_disk(ts: &TableServer, zone: &SecondaryZone, dir: &Path) -> Option<(ZoneCopy, u64)> {
    let (copy, age) = state::read(dir, &zone.name)?;
    match compile(&copy, zone.primary) {
        Ok(z) => {
            info!(ts = %ts.settings().name, zone = %zone.name, serial = copy.serial(), age_s = age, "secondary zone served from state_dir");
            ts.install_secondary(z);
            Some((copy, age))
        }
        Err(err) => {
            warn!(zone = %zone.name, %err, "the copy in state_dir is not used");
            None
        }
    }
}

/// Sets the zone served for `origin` expired or not.
fn mark_expired(ts: &TableServer, origin: &Name, expired: bool) {
    let current = ts
        .catalog()
        .zones()
        .iter()
        .find(|z| z.origin() == origin)
        .cloned();
    if let Some(z) = current.filter(|z| z.is_expired() != expired) {
        ts.install_secondary(z.with_expired(expired));
    }
}

/// Keeps `zone` of `ts` current until `stop`: see the module's text.
/// `changed` is told the zone's origin each time a new version is served
/// (to NOTIFY the TS's own secondaries).
pub async fn run(
    ts: Arc<TableServer>,
    zone: Arc<SecondaryZone>,
    driving: Driving,
    changed: impl Fn(Name) + Send + Sync,
    stop: CancellationToken,
) {
    let counters = &ts.metrics().secondary;
    let start = Instant::now();
    let mut copy = None;
    let mut schedule = Schedule::empty(0);
    if let Some(dir) = &driving.state_dir
        && let Some((c, age)) = from_disk(&ts, &zone, dir)
    {
        schedule = Schedule::from_disk(0, timers_of(&c), age);
        driving.tell(&c);
        copy = Some(c);
    }
    let mut failures: u32 = 0;
    let mut expired = false;
    loop {
        let now = secs(start);
        if !expired && schedule.expired(now) {
            expired = true;
            counters.expired.fetch_add(1, Relaxed);
            warn!(ts = %ts.settings().name, zone = %zone.name, "secondary zone expired: no contact with its primary for the SOA EXPIRE; answering SERVFAIL for it");
            mark_expired(&ts, &zone.name, true);
        }
        let at = match schedule.step(now) {
            RefreshStep::Ask => None,
            RefreshStep::Wait { at } => Some(at),
        };
        if let Some(at) = at {
            let sleep = Duration::from_secs(at.saturating_sub(now));
            tokio::select! {
                () = stop.cancelled() => return,
                () = zone.wake.notified() => schedule.notified(secs(start)),
                () = tokio::time::sleep(sleep) => {}
            }
            continue;
        }
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = attempt(&zone, copy.as_ref(), driving.limits, counters) => r,
        };
        let now = secs(start);
        match result {
            Ok(Outcome::UpToDate) => {
                counters.up_to_date.fetch_add(1, Relaxed);
                if let Some(c) = &copy {
                    schedule.contacted(now, timers_of(c));
                }
                failures = 0;
            }
            Ok(Outcome::New(new, how)) => {
                let (c, compiled) = *new;
                let counter = if how == "ixfr" {
                    &counters.ixfr
                } else {
                    &counters.axfr
                };
                counter.fetch_add(1, Relaxed);
                info!(ts = %ts.settings().name, zone = %zone.name, serial = c.serial(), by = how, records = c.len(), "secondary zone transferred");
                ts.install_secondary(compiled);
                if let Some(dir) = &driving.state_dir
                    && let Err(err) = state::write(dir, &c)
                {
                    warn!(zone = %zone.name, dir = %dir.display(), %err, "cannot keep the zone's copy in state_dir");
                }
                schedule.contacted(now, timers_of(&c));
                driving.tell(&c);
                copy = Some(c);
                failures = 0;
                changed(zone.name.clone());
            }
            Err(err) => {
                counters.failed.fetch_add(1, Relaxed);
                warn!(ts = %ts.settings().name, zone = %zone.name, primary = %zone.primary, %err, "secondary zone not refreshed; the copy served is kept");
                schedule.failed(now, failures);
                failures = failures.saturating_add(1);
                continue;
            }
        }
        if expired {
            expired = false;
            info!(zone = %zone.name, "secondary zone back in contact with its primary");
            mark_expired(&ts, &zone.name, false);
        }
    }
}
