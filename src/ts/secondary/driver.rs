//! The secondary zones of one TS at work: their shared state
//! ([`Secondaries`]: each zone's primary, key and wake-up, and the NOTIFY
//! answer over them, its refusals logged within a budget), and one task per
//! zone ([`run`]) that reads the copy on disk, asks the primary when the
//! timers or a NOTIFY say so (an IXFR answer cut or malformed followed by an
//! AXFR at once), swaps
//! each new version in atomically (through the [`Installer`]'s batches),
//! hands it to the `state_dir` writer ([`StateWriter`]: no disk work on
//! the runtime's threads but the read at start, skipped once stopped) and
//! expires the zone after the SOA EXPIRE
//! without contact. Its transfers wait for one of the primary's
//! [`TransferSlots`]. A copy that cannot be opened because the TS is out of
//! file descriptors is no damaged copy: logged as what it is and read again.
//! Its owner stops it with a cancellation token.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::client::{Limits, TransferSlots, XfrError, fetch};
use super::compiled::{compile, compile_changed, timers_of};
use super::install::Installer;
use super::notify::{NotifyOutcome, judge};
use super::records::{Answer, Rec, ZoneCopy, soa_serial};
use super::state;
use super::status::{Asks, AttemptEnd, to_unix};
use super::timers::{RefreshStep, Schedule};
use super::writer::StateWriter;
use crate::clock::unix_now;
use crate::dns::tsig::Key;
use crate::guard::log_budget::{Change, LimitLog};
use crate::ts::metrics::SecondaryCounters;
use crate::ts::serials::serial_newer;
use crate::ts::service::compiled::lower_wire;
use crate::ts::settings::TsSettings;
use crate::ts::table_server::{SecondaryChange, TableServer};
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
    /// What its task last did and plans, and the requests made by hand.
    pub asks: Asks,
}

impl SecondaryZone {
    /// The zone `name` of `primary`, transferred with `key`.
    pub fn new(name: Name, primary: SocketAddr, key: Option<Arc<Key>>) -> Self {
        SecondaryZone {
            name,
            primary,
            key,
            wake: Notify::new(),
            asks: Asks::default(),
        }
    }

    /// Asks its task for an attempt now (a full AXFR when `full`): the
    /// ticket to wait on ([`Asks::wait`]).
    pub fn ask_now(&self, full: bool) -> u64 {
        let ticket = self.asks.ask(full);
        self.wake.notify_one();
        ticket
    }
}

/// The secondary zones of one TS, by lower-cased name: those of its
/// `zones`, and the members of the catalog it consumes as they come and
/// go.
#[derive(Debug)]
pub struct Secondaries {
    zones: std::sync::RwLock<HashMap<Name, Arc<SecondaryZone>>>,
    /// The budget of the refused-NOTIFY log lines: NOTIFY is UDP, so
    /// anyone may send a flood of them from any address.
    log: LimitLog,
}

/// The refused-NOTIFY log's budget: this many lines a minute at most (the
/// rest counted, and summed up in one line).
const NOTIFY_LOG_LINES_A_MINUTE: u64 = 5;

impl Default for Secondaries {
    fn default() -> Self {
        Secondaries {
            zones: std::sync::RwLock::default(),
            log: LimitLog::new(
                std::time::Instant::now(),
                Duration::from_secs(60),
                NOTIFY_LOG_LINES_A_MINUTE,
            ),
        }
    }
}

/// Whether the `in_a_row`-th failure in a row of a zone's attempts is
/// logged: the first, then the 2nd, 4th, 8th... (each counted in
/// `dnslb_ts_secondary_total`), so a primary down for days costs each zone
/// a few lines, not one every RETRY.
fn logs_failure(in_a_row: u32) -> bool {
    in_a_row.is_power_of_two()
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
    /// accepted one wakes its zone's task. Counted in `counters`; a
    /// refused one logged within [`NOTIFY_LOG_LINES_A_MINUTE`].
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
                if let Some(more) = self.log.roll(std::time::Instant::now()) {
                    warn!(more = more.started, "more NOTIFYs refused");
                }
                if self.log.admit(Change::Started) {
                    warn!(zone = %name, %from, why = verdict.label(), "NOTIFY refused");
                }
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

/// What one attempt brought.
enum Outcome {
    UpToDate,
    New(Box<(ZoneCopy, Zone)>, &'static str),
}

/// Asks the primary of `zone` once: IXFR from `ours` (AXFR when there is
/// none, or when the IXFR answer is cut, malformed or does not apply),
/// every answer checked whole
/// before anything is kept. An IXFR is applied to `ours` in place (no copy
/// of the zone made, unless another holds it) and undone when the new
/// version is refused; `served` is the zone served for `ours`, patched
/// for the change. What a new version must pass: `accept`.
async fn attempt(
    zone: &SecondaryZone,
    (ours, expired, served): (&mut Option<Arc<ZoneCopy>>, bool, Option<Zone>),
    (limits, accept): (Limits, Option<&Accept>),
    counters: &SecondaryCounters,
) -> Result<Outcome, XfrError> {
    let soa: Option<Rec> = ours.as_ref().map(|c| c.soa.clone());
    let (primary, key) = (zone.primary, zone.key.clone());
    let fetched = match fetch(primary, &zone.name, soa.as_ref(), key, limits).await {
        Ok(fetched) => fetched,
        // An IXFR answer cut short or malformed: the whole zone asked once
        // before the attempt counts as failed, as Knot and BIND do (a
        // primary with a broken journal, or a middlebox cutting IXFRs,
        // would otherwise let the zone expire with its primary up).
        Err(err) if soa.is_some() && err.axfr_may_do() => {
            counters.ixfr_refused.fetch_add(1, Relaxed);
            warn!(zone = %zone.name, %err, "IXFR answer unusable, falling back to AXFR");
            fetch(primary, &zone.name, None, zone.key.clone(), limits).await?
        }
        Err(err) => return Err(err),
    };
    let our_serial = ours.as_ref().map(|o| o.serial());
    let older = |theirs: u32| our_serial.is_some_and(|o| theirs != o && !serial_newer(theirs, o));
    let applied = match fetched.answer {
        Answer::UpToDate(soa) => match soa_serial(&soa) {
            // The primary's serial went back: no contact (the zone runs
            // to its EXPIRE), then a fresh AXFR whatever its serial.
            Some(theirs) if older(theirs) => {
                return anew(zone, our_serial, expired, (limits, accept), theirs).await;
            }
            _ => return Ok(Outcome::UpToDate),
        },
        Answer::Full(c) => Ok(c),
        Answer::Incremental(changes, last) => {
            if !last.name.eq_ignore_root(&zone.name) {
                return Err(XfrError::Stray("another zone's SOA"));
            }
            match soa_serial(&last) {
                Some(s) if Some(s) == our_serial => return Ok(Outcome::UpToDate),
                Some(s) if older(s) => {
                    return anew(zone, our_serial, expired, (limits, accept), s).await;
                }
                _ => {}
            }
            let Some(shared) = ours.take() else {
                return Err(XfrError::Stray("changes answered to an AXFR"));
            };
            let mut copy = Arc::try_unwrap(shared).unwrap_or_else(|c| (*c).clone());
            match copy.apply(&changes) {
                Ok(undo) => {
                    let new = compile_changed(&copy, &changes, served.as_ref(), zone.primary)
                        .map_err(|e| XfrError::Unusable(e.to_string()))
                        .and_then(|z| match accept {
                            Some(accept) => accept(&copy).map(|()| z).map_err(XfrError::Unusable),
                            None => Ok(z),
                        });
                    return match new {
                        Ok(compiled) => Ok(Outcome::New(Box::new((copy, compiled)), "ixfr")),
                        Err(err) => {
                            copy.undo(undo);
                            *ours = Some(Arc::new(copy));
                            Err(err)
                        }
                    };
                }
                Err(err) => {
                    *ours = Some(Arc::new(copy));
                    Err(err)
                }
            }
        }
    };
    let copy = match applied {
        Ok(done) => done,
        Err(err) => {
            counters.ixfr_refused.fetch_add(1, Relaxed);
            warn!(zone = %zone.name, %err, "IXFR refused whole, falling back to AXFR");
            let full = fetch(zone.primary, &zone.name, None, zone.key.clone(), limits).await?;
            match full.answer {
                Answer::Full(c) => c,
                _ => return Err(XfrError::Stray("an AXFR answered with no whole zone")),
            }
        }
    };
    if !copy.origin().eq_ignore_root(&zone.name) {
        return Err(XfrError::Stray("another zone's SOA"));
    }
    if copy.serial() == our_serial.unwrap_or(!copy.serial()) {
        return Ok(Outcome::UpToDate);
    }
    if older(copy.serial()) {
        return anew(zone, our_serial, expired, (limits, accept), copy.serial()).await;
    }
    compiled_whole(copy, zone.primary, accept, "axfr")
}

/// The new version `copy` compiled whole, if `accept` takes it.
fn compiled_whole(
    copy: ZoneCopy,
    primary: SocketAddr,
    accept: Option<&Accept>,
    how: &'static str,
) -> Result<Outcome, XfrError> {
    let compiled = compile(&copy, primary).map_err(|e| XfrError::Unusable(e.to_string()))?;
    if let Some(accept) = accept {
        accept(&copy).map_err(XfrError::Unusable)?;
    }
    Ok(Outcome::New(Box::new((copy, compiled)), how))
}

/// A full AXFR asked for by hand (`dnslb zone retransfer`): the whole
/// zone taken and served again, whatever its serial.
async fn forced(
    zone: &SecondaryZone,
    (limits, accept): (Limits, Option<&Accept>),
) -> Result<Outcome, XfrError> {
    let full = fetch(zone.primary, &zone.name, None, zone.key.clone(), limits).await?;
    let Answer::Full(copy) = full.answer else {
        return Err(XfrError::Stray("an AXFR answered with no whole zone"));
    };
    if !copy.origin().eq_ignore_root(&zone.name) {
        return Err(XfrError::Stray("another zone's SOA"));
    }
    compiled_whole(copy, zone.primary, accept, "axfr")
}

/// The primary answered with `theirs`, a serial older than ours: an error
/// while the zone has not expired; once it has, as Knot does, its whole
/// zone by AXFR, whatever its serial (a primary rebuilt, or its serials
/// reset), logged.
async fn anew(
    zone: &SecondaryZone,
    ours: Option<u32>,
    expired: bool,
    (limits, accept): (Limits, Option<&Accept>),
    theirs: u32,
) -> Result<Outcome, XfrError> {
    if !expired {
        return Err(XfrError::Stray("the primary's serial is older than ours"));
    }
    let full = fetch(zone.primary, &zone.name, None, zone.key.clone(), limits).await?;
    let Answer::Full(copy) = full.answer else {
        return Err(XfrError::Stray("an AXFR answered with no whole zone"));
    };
    if !copy.origin().eq_ignore_root(&zone.name) {
        return Err(XfrError::Stray("another zone's SOA"));
    }
    warn!(zone = %zone.name, ours, theirs, serial = copy.serial(), "the primary's serial went back and the zone expired: its whole zone taken anew");
    compiled_whole(copy, zone.primary, accept, "axfr")
}

/// What a new version of a zone must pass to be served and kept (the
/// catalog's: its members readable); the reason it is refused.
pub type Accept = Arc<dyn Fn(&ZoneCopy) -> Result<(), String> + Send + Sync>;

/// Where a zone's task reads and writes, and how far it goes.
#[derive(Clone)]
pub struct Driving {
    /// `state_dir`: the last good copies, read at start.
    pub state_dir: Option<PathBuf>,
    /// Its writer (`None`: nothing written): the runtime's threads only
    /// hand it copies and contact times.
    pub writer: Option<StateWriter>,
    /// Each transfer's bounds.
    pub limits: Limits,
    /// Told each copy served (read from disk, or transferred): the
    /// catalog zone's, for its consumer.
    pub copies: Option<tokio::sync::watch::Sender<Option<Arc<ZoneCopy>>>>,
    /// Where its versions are put into service.
    pub installer: Arc<Installer>,
    /// The slots its transfers wait for (`None`: they wait for none: the
    /// catalog's own, never queued behind its members').
    pub slots: Option<Arc<TransferSlots>>,
    /// What a transferred version must pass, else it is neither served nor
    /// written to `state_dir` (the copy served is kept, as for a failed
    /// transfer).
    pub accept: Option<Accept>,
}

impl Driving {
    /// Tells `copies` of `copy`, when someone listens.
    fn tell(&self, copy: &Arc<ZoneCopy>) {
        if let Some(tx) = &self.copies {
            tx.send_replace(Some(copy.clone()));
        }
    }
}

/// Where the clock of [`Schedule`] starts: far enough from 0 that a copy
/// from disk as old as any SOA EXPIRE (32 bits) counts from before it.
const CLOCK_START: u64 = 1 << 32;

/// Seconds since `start`, the clock of [`Schedule`] (from [`CLOCK_START`]).
fn secs(start: Instant) -> u64 {
    CLOCK_START + start.elapsed().as_secs()
}

/// What the copy of a zone in `state_dir` gave.
enum FromDisk {
    /// Served (expired or not): the copy and its age.
    Served(Box<(ZoneCopy, u64)>),
    /// None there, or none usable (logged).
    Nothing,
    /// Not opened: the TS is out of file descriptors (logged); try again.
    OutOfFds,
}

/// The copy of `zone` in `dir`, with its age since the last contact with
/// the primary: served at once when it compiles, as expired (SERVFAIL)
/// when that age passed its SOA EXPIRE. A copy that cannot be read is
/// logged (the file, why) and not served; one that cannot be opened for
/// want of file descriptors is logged (once: `first`) as that.
async fn from_disk(
    ts: &TableServer,
    zone: &SecondaryZone,
    (dir, installer): (&Path, &Installer),
    first: bool,
) -> FromDisk {
    let path = || state::path_of(dir, &zone.name);
    let unused = |err: &dyn std::fmt::Display| {
        warn!(ts = %ts.settings().name, zone = %zone.name, path = %path().display(), %err, "the copy in state_dir is not served");
    };
    let (copy, age) = match state::read(dir, &zone.name, unix_now()) {
        Ok(Some(found)) => found,
        Ok(None) => return FromDisk::Nothing,
        Err(state::StateError::OutOfFds(err)) => {
            if first {
                warn!(ts = %ts.settings().name, zone = %zone.name, path = %path().display(), %err, "the copy in state_dir cannot be opened now: this process is out of file descriptors (raise LimitNOFILE); read again each second");
            }
            return FromDisk::OutOfFds;
        }
        Err(err) => {
            unused(&err);
            return FromDisk::Nothing;
        }
    };
    match compile(&copy, zone.primary) {
        Ok(z) => {
            let expired = age >= u64::from(timers_of(&copy).expire);
            let (name, serial) = (&ts.settings().name, copy.serial());
            if expired {
                warn!(ts = %name, zone = %zone.name, serial, age_s = age, "secondary zone in state_dir is past its SOA EXPIRE since the last contact with its primary: SERVFAIL until the primary answers");
            } else {
                info!(ts = %name, zone = %zone.name, serial, age_s = age, "secondary zone served from state_dir");
            }
            installer
                .apply([SecondaryChange::Install(Box::new(z.with_expired(expired)))])
                .await;
            FromDisk::Served(Box::new((copy, age)))
        }
        Err(err) => {
            unused(&err);
            FromDisk::Nothing
        }
    }
}

/// Notes a contact with `zone`'s primary beside its copy in `driving`'s
/// `state_dir` (handed to its writer).
fn note_contact(driving: &Driving, zone: &Name) {
    if let Some(w) = &driving.writer {
        w.contact(zone, unix_now());
    }
}

/// What `result` says of an attempt, `copy` the copy served before it.
fn ended(result: &Result<Outcome, XfrError>, copy: Option<&ZoneCopy>) -> AttemptEnd {
    let (ok, result, serial) = match result {
        Ok(Outcome::UpToDate) => (true, "up to date".to_owned(), copy.map(ZoneCopy::serial)),
        Ok(Outcome::New(new, how)) => (true, format!("new version by {how}"), Some(new.0.serial())),
        Err(err) => (false, err.to_string(), copy.map(ZoneCopy::serial)),
    };
    AttemptEnd {
        at_unix: unix_now(),
        ok,
        result,
        serial,
    }
}

/// Sets the zone served for `origin` expired or not.
async fn mark_expired(ts: &TableServer, installer: &Installer, origin: &Name, expired: bool) {
    let current = ts.catalog().with_origin(&lower_wire(origin)).cloned();
    if let Some(z) = current.filter(|z| z.is_expired() != expired) {
        installer
            .apply([SecondaryChange::Install(Box::new(z.with_expired(expired)))])
            .await;
    }
}

/// Marks the zone expired: counted, logged once, answered SERVFAIL.
async fn expire(ts: &TableServer, driving: &Driving, zone: &Name) {
    ts.metrics().secondary.expired.fetch_add(1, Relaxed);
    warn!(ts = %ts.settings().name, zone = %zone, "secondary zone expired: no contact with its primary for the SOA EXPIRE; answering SERVFAIL for it");
    mark_expired(ts, &driving.installer, zone, true).await;
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
    let mut copy: Option<Arc<ZoneCopy>> = None;
    let mut schedule = Schedule::empty(secs(start));
    // No disk work once stopped (a stop amid 100,000 members' starts).
    if let Some(dir) = driving.state_dir.as_ref().filter(|_| !stop.is_cancelled()) {
        let mut first = true;
        loop {
            let found = from_disk(&ts, &zone, (dir, &driving.installer), first).await;
            match found {
                FromDisk::Served(found) => {
                    let (c, age) = *found;
                    schedule = Schedule::from_disk(secs(start), timers_of(&c), age);
                    let c = Arc::new(c);
                    driving.tell(&c);
                    copy = Some(c);
                }
                FromDisk::Nothing => {}
                FromDisk::OutOfFds => {
                    first = false;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            }
            break;
        }
    }
    let mut failures: u32 = 0;
    let mut expired = false;
    loop {
        let now = secs(start);
        if !expired && schedule.expired(now) {
            expired = true;
            expire(&ts, &driving, &zone.name).await;
        }
        let at = match schedule.step(now) {
            RefreshStep::Ask => None,
            RefreshStep::Wait { at } => Some(at),
        };
        let to_unix = |at: u64| to_unix(at, now, unix_now());
        let expires = schedule.expires_at().map(to_unix);
        zone.asks.planned(at.map(to_unix), expires, expired);
        if let Some(at) = at {
            let sleep = Duration::from_secs(at.saturating_sub(now));
            tokio::select! {
                () = stop.cancelled() => return,
                () = zone.wake.notified() => schedule.notified(secs(start)),
                () = tokio::time::sleep(sleep) => {}
            }
            continue;
        }
        let served = copy.as_ref().and_then(|c| {
            let z = ts.catalog().with_origin(&lower_wire(&zone.name)).cloned();
            z.filter(|z| z.serial() == c.serial())
        });
        let (ticket, full) = zone.asks.begin();
        let result = {
            let was_expired = expired;
            let attempt = async {
                let _slot = match &driving.slots {
                    Some(slots) => slots.take(zone.primary).await,
                    None => None,
                };
                let how = (driving.limits, driving.accept.as_ref());
                if full {
                    return forced(&zone, how).await;
                }
                attempt(&zone, (&mut copy, was_expired, served), how, counters).await
            };
            tokio::pin!(attempt);
            // EXPIRE runs while an attempt is in flight too: a primary that
            // accepts and then says nothing (hung, stopped) must not hold the
            // expiry back until the attempt's timeouts end it.
            loop {
                let expiry = (!expired)
                    .then(|| schedule.expires_at())
                    .flatten()
                    .map(|at| Duration::from_secs(at.saturating_sub(secs(start))));
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = &mut attempt => break r,
                    () = tokio::time::sleep(expiry.unwrap_or_default()), if expiry.is_some() => {
                        expired = true;
                        expire(&ts, &driving, &zone.name).await;
                    }
                }
            }
        };
        let now = secs(start);
        zone.asks.end(
            ticket,
            ended(&result, copy.as_deref()),
            matches!(result, Ok(Outcome::New(..))),
        );
        match result {
            Ok(Outcome::UpToDate) => {
                counters.up_to_date.fetch_add(1, Relaxed);
                if let Some(c) = &copy {
                    schedule.contacted(now, timers_of(c));
                    note_contact(&driving, &zone.name);
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
                driving
                    .installer
                    .apply([SecondaryChange::Install(Box::new(compiled))])
                    .await;
                let c = Arc::new(c);
                if let Some(w) = &driving.writer {
                    w.copy(c.clone());
                }
                schedule.contacted(now, timers_of(&c));
                note_contact(&driving, &zone.name);
                driving.tell(&c);
                copy = Some(c);
                failures = 0;
                changed(zone.name.clone());
            }
            Err(err) => {
                counters.failed.fetch_add(1, Relaxed);
                let in_a_row = failures.saturating_add(1);
                if logs_failure(in_a_row) && copy.is_some() {
                    warn!(ts = %ts.settings().name, zone = %zone.name, primary = %zone.primary, %err, failures_in_a_row = in_a_row, "secondary zone not refreshed; the copy served is kept");
                } else if logs_failure(in_a_row) {
                    warn!(ts = %ts.settings().name, zone = %zone.name, primary = %zone.primary, %err, failures_in_a_row = in_a_row, "secondary zone not transferred; nothing served for it yet");
                }
                schedule.failed(now, failures);
                failures = failures.saturating_add(1);
                continue;
            }
        }
        if expired {
            expired = false;
            info!(zone = %zone.name, "secondary zone back in contact with its primary");
            mark_expired(&ts, &driving.installer, &zone.name, false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::logs_failure;

    #[test]
    fn a_zone_s_failures_in_a_row_are_logged_at_doubling_counts() {
        let logged: Vec<u32> = (1..=100).filter(|&n| logs_failure(n)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
        assert!(!logs_failure(0), "no failure, no line");
    }
}
