//! [`TableServer`]: an authoritative server over a swappable [`Catalog`]:
//! loading it, reloading it (a new catalog swapped in only when every file
//! loaded), signing again, and the serials kept across restarts. Its one
//! `impl` block is here; the request path over it is `respond.rs`, the
//! files read into zones and the version of each zone a reload serves
//! `load/` (`read.rs`, `settle.rs`, `versions.rs`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::opt::NSIDPayload;
use tracing::{info, warn};

use crate::dnstap::Dnstap;

use super::clock::now_u32;
use super::dnssec::policy;
use super::error::ZoneError;
use super::load::{
    FileMemo, LoadedCatalog, Look, Served, Versions, ZoneKeyMap, read_files, remapped, versions,
};
use super::metrics::TsMetrics;
use super::serials;
use super::service;
use super::settings::TsSettings;
use super::xfr::{self, ixfr, tsig};
use super::zone::{self, Catalog};

/// An authoritative server over a swappable catalog.
pub struct TableServer {
    pub(super) settings: TsSettings,
    pub(super) catalog: ArcSwap<Catalog>,
    pub(super) metrics: TsMetrics,
    /// `settings.nsid` as an option payload, built once.
    pub(super) nsid: Option<NSIDPayload>,
    /// What the zone files were when the catalog in force was read (see
    /// `settle.rs`) and each one's origin: a reload that finds them the
    /// same keeps the catalog as is, and one that finds some changed
    /// compiles only their zones.
    pub(super) sources: std::sync::Mutex<Option<FileMemo>>,
    /// Where the synthesized serials are kept across restarts (see
    /// [`serials`]), and the state last written there.
    pub(super) serial_state: Option<PathBuf>,
    /// The text of that state (as read at start, or last written): a
    /// state rendered the same is not written again.
    pub(super) saved: std::sync::Mutex<Option<String>>,
    /// The differences between the last versions of each zone, for IXFR.
    pub(super) journal: ixfr::Journal,
    /// The TSIG key of `xfr_key`, re-read on reload.
    pub(super) xfr_key: tsig::XfrKey,
    /// The zones started at another serial than the last run served (its
    /// state file says which): their secondaries are NOTIFYed at start.
    pub(super) changed_at_start: Vec<Name>,
    /// dnstap of its queries and answers (`dnstap` in its `[[ts]]`), and
    /// the address it serves on (each message's responder); off until
    /// [`TableServer::with_dnstap`].
    pub(super) dnstap: (Dnstap, Option<SocketAddr>),
    /// The `[[ts.service]]`s, compiled once.
    pub(super) services: service::Services,
    /// Their answers for the live set in force, rebuilt on each change.
    pub(super) answer_sets: ArcSwap<service::AnswerSets>,
    /// Their answer sets signed so far, in the zones signed here.
    pub(super) signed_sets: service::SignedSets,
    /// The keys of each zone signed here (by lower-cased wire origin), as
    /// read at its last signing: the services' answer sets are signed
    /// with them.
    pub(super) zone_keys: ArcSwap<ZoneKeyMap>,
    /// The endpoint checker, once started ([`TableServer::attach_checker`]).
    pub(super) checker: std::sync::Mutex<Option<service::check::Checker>>,
    /// What answers a NOTIFY (its secondary zones'), set once at start.
    pub(super) notify_hook: std::sync::OnceLock<NotifyHook>,
    /// The origins of the secondary zones installed: a reload keeps them.
    pub(super) secondary: std::sync::Mutex<std::collections::HashSet<Name>>,
    /// The settings its zones were last loaded with: `settings` but for
    /// `zones`, `secondaries` and the `[[ts]]` they came from, which a
    /// reload that changes `zones` replaces ([`TableServer::reload_with`]).
    pub(super) applied: ArcSwap<TsSettings>,
    /// Response rate limiting of its UDP answers (`rrl`); `None`: off.
    pub(super) rrl: Option<super::rrl::Rrl>,
    /// Who may send a PROXY v2 header (`proxy_from`); `None`: nobody.
    pub(super) proxy: Option<crate::server::proxy_gate::ProxyGate>,
}

/// A change to the secondary zones a TS serves
/// ([`TableServer::apply_secondaries`]).
#[derive(Debug)]
pub enum SecondaryChange {
    /// A zone's new version (or the same one, expired or not), in place of
    /// the one of its origin.
    Install(Box<zone::Zone>),
    /// A zone no longer served (a member gone from its catalog).
    Remove(Name),
}

/// `origin` as the serials' state file names it: its text in lower case
/// (one `String` a zone, lower-cased in place).
fn lower_text(origin: &Name) -> String {
    let mut text = origin.to_ascii();
    text.make_ascii_lowercase();
    text
}

/// Appends [`lower_text`] of `zone`'s origin to `out`: spelled from its
/// key when it can be ([`serials::push_origin`]), with no `String` of its own.
fn push_lower_text(out: &mut String, zone: &zone::Zone) {
    if !serials::push_origin(out, zone.origin_wire()) {
        out.push_str(&lower_text(zone.origin()));
    }
}

/// The answer to a NOTIFY (the request's bytes, its source), `None` to drop it.
pub type NotifyHook = Box<dyn Fn(&[u8], std::net::IpAddr) -> Option<Vec<u8>> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Zones whose data changed (their serials went up).
    pub changed: usize,
    /// Origins of those zones (secondaries are NOTIFYed of them).
    pub changed_zones: Vec<Name>,
    /// Zones served after the reload.
    pub zones: usize,
    /// Zones compiled from their files (the others' files did not change:
    /// kept as they were).
    pub compiled: usize,
    /// Zones served now that were not before (a file added to `zones`...).
    pub added: Vec<Name>,
    /// Zones no longer served (a file gone from `zones`...).
    pub removed: Vec<Name>,
}

impl TableServer {
    /// The transfer key in force (signs the NOTIFYs).
    pub fn xfr_key(&self) -> Option<Arc<crate::dns::tsig::Key>> {
        self.xfr_key.get()
    }

    /// Requests refused for their TSIG, by [`tsig::TsigRefusal::ALL`] order.
    pub fn tsig_refused(&self) -> &[std::sync::atomic::AtomicU64; tsig::TsigRefusal::ALL.len()] {
        &self.xfr_key.refused
    }

    /// Loads the zones of `settings`.
    ///
    /// # Errors
    /// The first bad file or line.
    pub fn load(settings: TsSettings) -> Result<Self, ZoneError> {
        let xfr_key = tsig::XfrKey::load(&settings).map_err(ZoneError::Key)?;
        let clock = now_u32();
        let mut warnings = Vec::new();
        let (LoadedCatalog { zones, .. }, memo) =
            read_files(&settings, clock, &mut warnings, None, None)?;
        let contents = memo.contents();
        let sources = Some(memo);
        for w in &warnings {
            warn!("{w}");
        }
        let serial_state = serials::state_path(
            &settings.name,
            &settings.zones,
            std::env::var_os("STATE_DIRECTORY"),
        );
        let (saved, saved_text) = serial_state.as_deref().and_then(serials::read_text).unzip();
        let same_files = match (&saved, &contents) {
            (Some(saved), Some(c)) => saved.files == serials::files_hash(c, settings.ttl),
            _ => false,
        };
        // By origin (lower case): one lookup a zone, not a scan of 100,000,
        // each origin spelled into one buffer.
        let recorded_serials = saved.as_ref().map(serials::Saved::by_origin);
        let recorded: Vec<Option<u32>> = match &recorded_serials {
            None => vec![None; zones.len()],
            Some(m) => {
                let mut text = String::new();
                zones
                    .iter()
                    .map(|z| {
                        text.clear();
                        push_lower_text(&mut text, z);
                        m.get(&text).copied()
                    })
                    .collect()
            }
        };
        // Synthesized serials: kept, or raised, from what the last run
        // recorded. A zone signed here is signed now, its serial above the
        // last one served (its signatures are new).
        let mut zone_keys = ZoneKeyMap::new();
        // In place: a zone neither signed here nor given a made-up SOA (a
        // zone file's, most) stays where it is, not moved (a zone is a few
        // hundred bytes, and a TS may have 100,000).
        let mut zones = zones;
        for (z, &recorded) in zones.iter_mut().zip(&recorded) {
            if policy::signs(&settings, z) {
                let serial = match recorded {
                    Some(r) => serials::next_serial(r, clock),
                    None => serials::start_serial(None, false, clock),
                };
                let (signed, keys) =
                    policy::sign(&settings, z, None, serial, clock).map_err(ZoneError::signing)?;
                zone_keys.insert(z.origin_wire().to_vec(), Arc::new(keys));
                *z = signed;
            } else if z.soa_synthesized() {
                z.set_serial(serials::start_serial(recorded, same_files, clock));
            }
        }
        let changed_at_start = zones
            .iter()
            .zip(&recorded)
            .filter(|(z, r)| r.is_some_and(|r| r != z.serial()))
            .map(|(z, _)| z.origin().clone())
            .collect();
        let catalog = Catalog::new(zones);
        // The config allows at most 128 bytes; only a payload over 65 535
        // bytes is refused here, and no TS is started with one.
        let nsid = settings
            .nsid
            .as_ref()
            .and_then(|s| NSIDPayload::new(s.as_bytes().to_vec()).ok());
        // Every endpoint starts live (fail-open), as the checker does.
        let mut services = service::Services::compile(&settings.services);
        // Each service answers in the zone it was loaded into, found now,
        // before any secondary or catalog member zone is served.
        services.set_zones(|key| {
            let key = super::wire::NameKey::read(key)?;
            let zone = catalog.find(&key, u16::from(hickory_proto::rr::RecordType::A))?;
            Some(zone.origin_wire().to_vec())
        });
        let answer_sets = service::AnswerSets::build(&services.list, &|_| true);
        let signed_sets = service::SignedSets::new(service::SignedSets::bound_for(&services.list));
        let applied = ArcSwap::from_pointee(settings.clone());
        let rrl = super::rrl::Rrl::new(&settings.rrl);
        let settings_proxy_from = settings.proxy_from.clone();
        let ts = TableServer {
            settings,
            catalog: ArcSwap::from_pointee(catalog),
            metrics: TsMetrics::default(),
            nsid,
            sources: std::sync::Mutex::new(sources),
            serial_state,
            saved: std::sync::Mutex::new(saved_text),
            journal: ixfr::Journal::default(),
            xfr_key,
            changed_at_start,
            dnstap: (Dnstap::off(), None),
            services,
            answer_sets: ArcSwap::from_pointee(answer_sets),
            signed_sets,
            zone_keys: ArcSwap::from_pointee(zone_keys),
            checker: std::sync::Mutex::new(None),
            notify_hook: std::sync::OnceLock::new(),
            secondary: std::sync::Mutex::default(),
            applied,
            rrl,
            proxy: crate::server::proxy_gate::ProxyGate::new(&settings_proxy_from),
        };
        ts.save_serials(contents.as_deref());
        Ok(ts)
    }

    /// This table server writing its AUTH_QUERY and AUTH_RESPONSE messages
    /// to `dnstap`, as the server at `listen`.
    pub fn with_dnstap(mut self, dnstap: Dnstap, listen: SocketAddr) -> Self {
        self.dnstap = (dnstap, Some(listen));
        self
    }

    /// The checker's targets of its services (empty without services).
    pub fn service_targets(&self) -> Vec<(service::check::Target, Vec<service::check::Label>)> {
        service::compiled::targets(&self.settings.services)
    }

    /// Rebuilds the services' answers for `live` (the checker's set, in the
    /// order of [`TableServer::service_targets`]); an index it lacks is live.
    pub fn set_live(&self, live: &service::check::LiveSet) {
        let up = |i: usize| live.up.get(i).copied().unwrap_or(true);
        let sets = service::AnswerSets::build(&self.services.list, &up);
        self.answer_sets.store(Arc::new(sets));
    }

    /// Keeps the running checker, for `/metrics` and for its stop.
    pub fn attach_checker(&self, checker: service::check::Checker) {
        if let Ok(mut slot) = self.checker.lock() {
            *slot = Some(checker);
        }
    }

    /// The checker, taken to wait for its end.
    pub fn take_checker(&self) -> Option<service::check::Checker> {
        self.checker.lock().ok().and_then(|mut c| c.take())
    }

    /// The checker's Prometheus lines (none without services).
    pub fn write_service_metrics(&self, out: &mut String) {
        if let Ok(slot) = self.checker.lock()
            && let Some(c) = slot.as_ref()
        {
            c.write_prometheus(out);
        }
    }

    /// The services' endpoints and their states, for `dnslb status` (none
    /// without services).
    pub fn service_states(&self) -> Vec<service::check::EndpointState> {
        self.checker
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(service::check::Checker::states))
            .unwrap_or_default()
    }

    /// Sets what answers the NOTIFYs it gets (once; later calls do nothing).
    pub fn set_notify_hook(&self, hook: NotifyHook) {
        let _ = self.notify_hook.set(hook);
    }

    /// Applies `changes` to the secondary zones served, in their order
    /// (the last change of an origin stands), with one new catalog swapped
    /// in for the whole batch, linear in the zones served: each zone
    /// installed in place of the one of its origin, its difference from the
    /// version served going into the IXFR journal; each zone removed no
    /// longer served and its IXFR history dropped.
    pub fn apply_secondaries(&self, changes: Vec<SecondaryChange>) {
        // One swap at a time: a reload does not lose it, nor it a reload.
        let _last = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.apply_secondaries_locked(changes);
    }

    /// [`TableServer::apply_secondaries`], its caller holding `sources`.
    pub(in crate::ts) fn apply_secondaries_locked(&self, changes: Vec<SecondaryChange>) {
        let old = self.catalog.load_full();
        let mut last: std::collections::HashMap<Box<[u8]>, Option<zone::Zone>> =
            std::collections::HashMap::with_capacity(changes.len());
        for change in changes {
            match change {
                SecondaryChange::Install(z) => last.insert(z.origin_wire().into(), Some(*z)),
                SecondaryChange::Remove(n) => {
                    last.insert(service::compiled::lower_wire(&n).into(), None)
                }
            };
        }
        let mut installed = self.secondaries();
        let (mut put, mut gone) = (Vec::new(), std::collections::HashSet::new());
        for (key, zone) in last {
            match zone {
                Some(z) => {
                    installed.insert(z.origin().clone());
                    put.push(z);
                }
                None => {
                    let Some(o) = old.with_origin(&key) else {
                        continue;
                    };
                    if installed.remove(o.origin()) {
                        self.journal.forget(&ixfr::journal_key(o));
                        gone.insert(key);
                    }
                }
            }
        }
        drop(installed);
        old.carry_queries(&mut put);
        self.record_changes(&old, &put);
        self.catalog.store(Arc::new(old.replaced(put, &gone)));
    }

    fn secondaries(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Name>> {
        self.secondary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Its dnstap handle (off unless [`TableServer::with_dnstap`]).
    pub fn dnstap(&self) -> &Dnstap {
        &self.dnstap.0
    }

    /// Records the synthesized serials in force and `sources` (the files
    /// they stand for, when known) in the state file, when that changes what
    /// it holds.
    /// A failure is logged: serials then start from the clock next time.
    fn save_serials(&self, sources: Option<&[(u64, u64)]>) {
        let Some(path) = &self.serial_state else {
            return;
        };
        // Unknown files (one was renamed over while read): a hash that
        // matches none, so the next start takes a newer serial.
        let files = sources.map_or(0, |fp| serials::files_hash(fp, self.settings.ttl));
        // Every zone's: a master file's too (see `serials`). Rendered as
        // `serials::Saved::render` renders them, into one `String`.
        let catalog = self.catalog.load();
        let zones = catalog.zones();
        if zones.is_empty() {
            return;
        }
        let mut now = serials::head(files);
        now.reserve(zones.len() * 32);
        for z in zones {
            serials::push_zone(&mut now, |out| push_lower_text(out, z), z.serial());
        }
        let mut saved = self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if saved.as_ref() == Some(&now) {
            return;
        }
        match serials::write_text(path, &now) {
            Ok(()) => *saved = Some(now),
            Err(err) => warn!(
                ts = %self.settings.name,
                path = %path.display(),
                %err,
                "cannot record the SOA serials: after a restart they start from the clock and may go backwards (set STATE_DIRECTORY to a writable folder)"
            ),
        }
    }

    /// Records in the IXFR journal how each of `zones` (about to be served)
    /// differs from its version in `old`, when its serial moved.
    fn record_changes(&self, old: &Catalog, zones: &[zone::Zone]) {
        let depth = usize::try_from(self.settings.ixfr_history).unwrap_or(usize::MAX);
        for z in zones {
            let Some(o) = old.with_origin(z.origin_wire()) else {
                continue;
            };
            if o.serial() == z.serial() {
                continue;
            }
            let size = z.compiled_bytes();
            let delta = if depth == 0 {
                None
            } else {
                zone::transfer::diff(o, z, size / 2).map(|(deleted, added)| ixfr::Delta {
                    from: o.serial(),
                    to: z.serial(),
                    old_soa: xfr::axfr::soa_wire(o),
                    new_soa: xfr::axfr::soa_wire(z),
                    deleted: Arc::new(deleted),
                    added: Arc::new(added),
                })
            };
            self.journal
                .record(&ixfr::journal_key(z), delta, size, depth);
        }
    }

    /// Its counters since start.
    pub fn metrics(&self) -> &TsMetrics {
        &self.metrics
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &TsSettings {
        &self.settings
    }

    /// The zones this TS started at another serial than its last run served
    /// (a restart after the files changed, a zone signed anew): NOTIFYed at
    /// start, as NSD does. Empty at a first start (nothing recorded).
    pub fn changed_at_start(&self) -> &[Name] {
        &self.changed_at_start
    }

    /// A snapshot of the zones being served.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Re-reads every zone file and swaps the new catalog in atomically. A
    /// zone whose data changed gets a higher serial (never a lower one); an
    /// unchanged zone keeps its serial. The transfer key is read again first.
    /// Counted as applied or refused.
    ///
    /// # Errors
    /// Any bad file (zone or key): nothing is swapped and the old zones and
    /// key keep serving.
    pub fn reload(&self) -> Result<ReloadReport, ZoneError> {
        self.reload_with(None)
    }

    /// [`TableServer::reload`], its zone files and secondary zones those of
    /// `next` when given (a reload whose config changed `zones`): the zones
    /// of the files added are served, those of the files gone are not, in
    /// the one swap; the files kept are not read again unless they changed.
    /// `next`'s other keys are not applied (only a restart does).
    ///
    /// # Errors
    /// As [`TableServer::reload`], and a zone given both by a file and as a
    /// secondary zone: nothing is swapped, the settings in force stay.
    pub fn reload_with(&self, next: Option<TsSettings>) -> Result<ReloadReport, ZoneError> {
        let result = self
            .xfr_key
            .reload(&self.settings)
            .map_err(ZoneError::Key)
            .and_then(|()| self.swap_in_fresh(next));
        self.metrics.record_reload(result.is_ok());
        result
    }

    /// The settings its zones were last loaded with: [`TableServer::settings`]
    /// with the `zones` (files and secondary zones) in force.
    pub fn applied(&self) -> Arc<TsSettings> {
        self.applied.load_full()
    }

    /// [`TableServer::reload_with`], uncounted.
    fn swap_in_fresh(&self, next: Option<TsSettings>) -> Result<ReloadReport, ZoneError> {
        let before = self.applied.load_full();
        let (next, moved) = match next {
            Some(n) => {
                let moved = n.zones != before.zones;
                (Arc::new(n), moved)
            }
            None => (before.clone(), false),
        };
        let look = Look::now(&next.zones);
        let mut last = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read under the lock `apply_secondaries` holds for its swap: a
        // secondary copy installed while the files were read is kept, not
        // replaced by the one served when the reload began.
        let old = self.catalog.load_full();
        // The list of files changed: what was seen of each file kept.
        let carried = moved
            .then(|| (last.as_ref()).map(|m| remapped(m, &before.zones, &next.zones)))
            .flatten();
        let prior = carried.as_ref().or(last.as_ref());
        // With signing on, the keys may have changed though the files did not.
        let same_bytes = !moved && prior.is_some_and(|m| m.unchanged(&next.zones, &look));
        if same_bytes && self.settings.dnssec.is_none() {
            // Not a byte changed: the zones in memory are those files, none
            // of which may now be given as a secondary zone too.
            let installed = self.secondaries().clone();
            let files = (old.zones().iter()).filter(|z| !installed.contains(z.origin()));
            super::zones_live::refuse_given_twice(&next, files)?;
            self.applied.store(next);
            return Ok(ReloadReport {
                changed: 0,
                changed_zones: Vec::new(),
                zones: old.zones().len(),
                compiled: 0,
                added: Vec::new(),
                removed: Vec::new(),
            });
        }
        let clock = now_u32();
        let mut warnings = Vec::new();
        // Kept as served when their files did not change: a zone neither
        // signed here nor pre-signed (signatures age and keys move), nor a
        // secondary zone of the same name.
        let installed = self.secondaries().clone();
        let keep = |z: &zone::Zone| {
            z.signature().is_none() && !z.is_presigned() && !installed.contains(z.origin())
        };
        let served = prior.map(|memo| Served {
            memo,
            catalog: &old,
            keep: &keep,
        });
        let (fresh, memo) = read_files(&next, clock, &mut warnings, served, Some(look))?;
        for w in &warnings {
            warn!("{w}");
        }
        let LoadedCatalog {
            zones: fresh,
            compiled,
            ..
        } = fresh;
        let Versions {
            mut zones,
            changed: changed_zones,
            keys: zone_keys,
        } = versions(&next, &old, fresh, clock)?;
        super::zones_live::refuse_given_twice(&next, &zones)?;
        // The secondary zones are not in the files: kept as they are, but
        // for one a file now gives (no longer a secondary zone).
        let from_files: std::collections::HashSet<&[u8]> =
            zones.iter().map(zone::Zone::origin_wire).collect();
        let secondary = |z: &&zone::Zone| {
            installed.contains(z.origin()) && !from_files.contains(z.origin_wire())
        };
        let kept: Vec<zone::Zone> = old.zones().iter().filter(secondary).cloned().collect();
        self.secondaries()
            .retain(|o| !from_files.contains(&service::compiled::lower_wire(o)[..]));
        zones.extend(kept);
        old.carry_queries(&mut zones);
        self.record_changes(&old, &zones);
        let (added, removed) = super::zones_live::added_removed(&old, &zones);
        let report = ReloadReport {
            changed: changed_zones.len(),
            changed_zones,
            zones: zones.len(),
            compiled,
            added,
            removed,
        };
        self.zone_keys.store(Arc::new(zone_keys));
        self.catalog.store(Arc::new(Catalog::new(zones)));
        self.applied.store(next);
        // The files did not change while they were read: what was seen of
        // them stands for the zones in force.
        let contents = memo.contents();
        *last = Some(memo);
        drop(last);
        self.save_serials(contents.as_deref());
        Ok(report)
    }

    /// Reads again the keys of each zone signed here and signs it again,
    /// its serial raised, when the keys now do something else (a key
    /// published, activated, retired, deleted or settled, by its timing or
    /// by a key file added or changed), when its signatures are due for
    /// refresh, or when the clock went back behind them
    /// ([`zone::Signature::stale`]); the other zones are kept, with their
    /// keys' next event as now read. Returns the origins of the zones signed
    /// again.
    ///
    /// # Errors
    /// Keys that cannot be read, or a zone that cannot be signed: nothing
    /// is swapped.
    pub fn refresh_signatures(&self, now: u32) -> Result<Vec<Name>, ZoneError> {
        let last = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = self.catalog.load_full();
        let mut changed = Vec::new();
        let mut zones = Vec::with_capacity(old.zones().len());
        let mut zone_keys = ZoneKeyMap::new();
        for z in old.zones() {
            let Some(s) = z.signature() else {
                zones.push(z.clone());
                continue;
            };
            let keys = policy::zone_keys(&self.settings, z, now).map_err(ZoneError::signing)?;
            if s.stale(&keys.tags(), now) {
                let serial = serials::next_serial(z.serial(), now);
                zones.push(
                    policy::sign_with(&self.settings, z, Some(z), &keys, serial, now)
                        .map_err(ZoneError::signing)?,
                );
                changed.push(z.origin().clone());
            } else {
                zones.push(z.clone().with_key_event(keys.next_event(now)));
            }
            zone_keys.insert(z.origin_wire().to_vec(), Arc::new(keys));
        }
        self.zone_keys.store(Arc::new(zone_keys));
        old.carry_queries(&mut zones);
        if changed.is_empty() {
            // The keys' next events as read now: when the TS wakes next.
            self.catalog.store(Arc::new(Catalog::new(zones)));
        } else {
            self.record_changes(&old, &zones);
            self.catalog.store(Arc::new(Catalog::new(zones)));
            let contents = last.as_ref().and_then(FileMemo::contents);
            drop(last);
            self.save_serials(contents.as_deref());
        }
        Ok(changed)
    }

    /// When the first of the zones signed here is due for refresh (seconds
    /// since the epoch), if any is signed here.
    pub fn next_refresh(&self) -> Option<u32> {
        let catalog = self.catalog.load();
        catalog
            .zones()
            .iter()
            .filter_map(|z| z.signature())
            .map(|s| s.refresh_at())
            .min()
    }

    /// [`TableServer::refresh_signatures`] now, with its outcome logged.
    /// Returns the origins of the zones signed again.
    pub fn refresh_logged(&self) -> Vec<Name> {
        match self.refresh_signatures(now_u32()) {
            Ok(zones) => {
                for z in &zones {
                    info!(ts = %self.settings.name, zone = %z, "signatures refreshed");
                }
                zones
            }
            Err(err) => {
                warn!(ts = %self.settings.name, %err, "signatures not refreshed, old ones keep serving");
                Vec::new()
            }
        }
    }

    /// [`TableServer::reload`] with its outcome logged (one line either way).
    /// Returns the origins of the zones that changed.
    pub fn reload_logged(&self) -> Vec<Name> {
        match self.reload() {
            Ok(r) => {
                info!(ts = %self.settings.name, changed = r.changed, compiled = r.compiled, zones = r.zones, "reload done");
                r.changed_zones
            }
            Err(err) => {
                warn!(ts = %self.settings.name, %err, "reload refused, old zones keep serving");
                Vec::new()
            }
        }
    }
}
