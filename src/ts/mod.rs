//! The table server (TS): authoritative answers from zone tables.
//!
//! [`TableServer`] holds its [`Catalog`] in an `ArcSwap`: queries read a
//! snapshot without locking, and [`TableServer::reload`] swaps in a new one
//! only when every file loaded cleanly. Answers follow SPEC §4; the fault
//! knobs delay or drop a share of them for experiments. Each request and
//! reload is counted in [`TsMetrics`] (atomics), served on `/metrics` when
//! `metrics` is set. With an `nsid` configured, every answer that carries an
//! OPT also carries the NSID when the query asked for it (RFC 5001), as NSD
//! and Knot answer; AXFR messages do not.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, OpCode, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use ipnet::IpNet;
use tracing::{info, warn};

use crate::config::{Fault, OnMiss, TsConfig, ValueError, parse_name};
use crate::dns::{self, ClientQuery, ResponseWriter, Transport};
use crate::server::{Action, Handler, Reply, Request};

pub mod answer;
pub mod metrics;
pub mod serials;
pub mod source;
pub mod table;
pub mod wire;
pub mod xfr;
pub mod zone;
pub mod zonefile;

use answer::PlainQuery;
use dns::Reject;
use metrics::{Outcome, TsMetrics, Unanswered};
use source::ZoneError;
use wire::Key;
use zone::{Catalog, Zone, ZoneBuilder};

/// SOA timers of a zone built from PROJ tables (RFC 1912 §2.2 values).
const SYNTH_REFRESH: i32 = 3600;
const SYNTH_RETRY: i32 = 600;
const SYNTH_EXPIRE: i32 = 604_800;

/// What a TS serves and how.
#[derive(Debug, Clone)]
pub struct TsSettings {
    /// Name used in logs.
    pub name: String,
    /// Zone files: PROJ tables and `.zone` master files.
    pub zones: Vec<PathBuf>,
    /// Origin of the PROJ tables.
    pub origin: Name,
    /// TTL of PROJ-table records.
    pub ttl: u32,
    /// What to do for a name that does not exist.
    pub on_miss: OnMiss,
    /// Clients allowed to transfer zones (AXFR over TCP).
    pub axfr_allow: Vec<IpNet>,
    /// Secondaries to NOTIFY when a zone changes on reload.
    pub notify: Vec<SocketAddr>,
    /// Fault injection.
    pub fault: Fault,
    /// Name server identifier returned to queries that ask for it (RFC 5001).
    pub nsid: Option<String>,
}

impl TsSettings {
    /// Settings from a `[[ts]]` section, whose values were all checked when the config
    /// was read.
    pub fn from_config(c: &TsConfig) -> Self {
        TsSettings {
            name: c.name.clone(),
            zones: c.zones.clone(),
            origin: c.origin.clone(),
            ttl: c.ttl,
            on_miss: c.on_miss,
            axfr_allow: c.axfr_allow.clone(),
            notify: c.notify.clone(),
            fault: c.fault,
            nsid: c.nsid.clone(),
        }
    }
}

/// An origin given as text (`dnslb ts --origin`) that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0}")]
pub struct OriginError(pub ValueError);

/// Parses an origin such as `.` or `example.com` as a fully qualified name, as
/// `origin` in `config.toml` is parsed.
///
/// # Errors
/// Not a DNS name; the message shows the text, e.g.
/// `origin "a..b" is not a DNS name: Malformed label`.
pub fn parse_origin(s: &str) -> Result<Name, OriginError> {
    parse_name(s).map_err(OriginError)
}

/// Loads every zone of `settings` into a catalog. Zones whose SOA is
/// synthesized get `serial`.
///
/// # Errors
/// The first problem found, as `file:line: what is wrong`.
pub fn load_catalog(settings: &TsSettings, serial: u32) -> Result<Catalog, ZoneError> {
    load_catalog_noting(settings, serial, &mut Vec::new())
}

/// [`load_catalog`], with the warnings about the files (a signed zone whose
/// DNSSEC records are served as data only) added to `warnings`.
///
/// # Errors
/// As [`load_catalog`].
pub fn load_catalog_noting(
    settings: &TsSettings,
    serial: u32,
    warnings: &mut Vec<String>,
) -> Result<Catalog, ZoneError> {
    // One builder per zone origin: PROJ tables share the TS origin and are
    // compiled line by line as they are read; each master file brings its own.
    let mut builders: Vec<ZoneBuilder> = Vec::new();
    fn builder_for(builders: &mut Vec<ZoneBuilder>, origin: &Name) -> usize {
        match builders.iter().position(|b| b.origin() == origin) {
            Some(i) => i,
            None => {
                builders.push(ZoneBuilder::new(origin.clone(), 0));
                builders.len() - 1
            }
        }
    }
    let mut table_origin = settings.origin.clone();
    table_origin.set_fqdn(true);
    for (i, file) in settings.zones.iter().enumerate() {
        if zonefile::is_master_file(file) {
            let (origin, records) = zonefile::load_any(file, &settings.origin, settings.ttl)?;
            warnings.extend(zonefile::signed_zone_warning(file, &records));
            let b = builder_for(&mut builders, &origin);
            for rec in &records {
                builders[b].add(i, file, rec)?;
            }
        } else {
            let b = builder_for(&mut builders, &table_origin);
            let builder = &mut builders[b];
            table::visit_table_file(file, &table_origin, settings.ttl, |rec| {
                builder.add(i, file, &rec)
            })?;
        }
    }
    let mut zones = Vec::with_capacity(builders.len());
    for b in builders {
        let ttl = settings.ttl;
        let zone = b.finish(&settings.zones, |origin, apex_ns| {
            synth_soa(origin, apex_ns, ttl, serial)
        })?;
        zones.push(zone);
    }
    Ok(Catalog::new(zones))
}

/// The SOA of a zone that has none in its files: the first apex NS target
/// (or the origin) as primary, `hostmaster.<origin>` as contact.
fn synth_soa(origin: &Name, apex_ns: Option<&Name>, ttl: u32, serial: u32) -> (u32, SOA) {
    let mname = apex_ns.cloned().unwrap_or_else(|| origin.clone());
    let rname = origin
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| origin.clone());
    (
        ttl,
        SOA::new(
            mname,
            rname,
            serial,
            SYNTH_REFRESH,
            SYNTH_RETRY,
            SYNTH_EXPIRE,
            ttl,
        ),
    )
}

use serials::serial_newer;

/// Reads of the zone files before a reload (or the start) gives up on files
/// that change every time they are read.
const READ_TRIES: u32 = 5;
/// Pause before the second read; doubled before each further one (50, 100,
/// 200, 400 ms: 750 ms in all).
const READ_BACKOFF: Duration = Duration::from_millis(50);

/// How long after a read the zone files are looked at again: a writer
/// rewriting a file in place may sit between truncating it and writing the
/// rest, where a quick read sees a short file that does not change while read.
const SETTLE: Duration = Duration::from_millis(100);

/// Each file's device and inode (`None` for one that cannot be read): a
/// file renamed over another is another inode, a file rewritten in place
/// the same.
fn identities(files: &[PathBuf]) -> Vec<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| std::fs::metadata(f).ok().map(|m| (m.dev(), m.ino())))
        .collect()
}

/// The result of `read` over `files` that were not rewritten in place while
/// it ran, with their fingerprint when it is known to stand for what was
/// read. Each try takes the fingerprint (and each file's inode) before and
/// after `read`, and again `settle` later. A file whose bytes changed while
/// its inode stayed is being rewritten in place: what was read may be
/// half-written and is never served; the try is logged and, after
/// `pause(backoff)`, made again, up to [`READ_TRIES`]. A file renamed over
/// (another inode) was read whole, from one version or the other: the
/// result is kept, without a fingerprint (the next reload reads again).
///
/// # Errors
/// `read`'s error from files that did not change while read (a real
/// mistake in them); [`ZoneError::Unsettled`] when they changed every time.
fn read_settled<T>(
    ts: &str,
    files: &[PathBuf],
    settle: Duration,
    mut read: impl FnMut() -> Result<T, ZoneError>,
    mut pause: impl FnMut(Duration),
) -> Result<(T, Option<Fingerprint>), ZoneError> {
    let mut backoff = READ_BACKOFF;
    for attempt in 1..=READ_TRIES {
        let ids = identities(files);
        let before = fingerprint(files);
        let result = read();
        let after = fingerprint(files);
        let renamed = identities(files) != ids;
        let mut settled = before == after || renamed;
        if settled && !settle.is_zero() {
            // A writer between truncating a file and writing the rest leaves
            // a short file that a quick read sees unchanged (and the file's
            // time is no sure sign of it): look again a moment later.
            pause(settle);
            settled = fingerprint(files) == after || identities(files) != ids;
        }
        if settled {
            let known = (before == after && !renamed).then_some(after).flatten();
            return result.map(|v| (v, known));
        }
        warn!(
            ts,
            attempt,
            tries = READ_TRIES,
            "zone files changed while being read: what was read is not used, reading again"
        );
        if attempt < READ_TRIES {
            pause(backoff);
            backoff *= 2;
        }
    }
    Err(ZoneError::Unsettled {
        file: files.first().cloned().unwrap_or_default(),
        tries: READ_TRIES,
    })
}

fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// An authoritative server over a swappable catalog.
pub struct TableServer {
    settings: TsSettings,
    catalog: ArcSwap<Catalog>,
    metrics: TsMetrics,
    /// `settings.nsid` as an option payload, built once.
    nsid: Option<NSIDPayload>,
    /// What the zone files held when the catalog in force was read (see
    /// [`fingerprint`]): a reload that finds them the same keeps it as is.
    sources: std::sync::Mutex<Option<Vec<(u64, u64)>>>,
    /// Where the synthesized serials are kept across restarts (see
    /// [`serials`]), and the state last written there.
    serial_state: Option<PathBuf>,
    saved: std::sync::Mutex<Option<serials::Saved>>,
}

/// Each zone file's length and a hash of its bytes.
pub type Fingerprint = Vec<(u64, u64)>;

/// Each file's length and a hash of its bytes (`None` if one cannot be
/// read), streamed in 64 KiB pieces so a big table costs no memory.
pub fn fingerprint(files: &[PathBuf]) -> Option<Vec<(u64, u64)>> {
    use std::hash::Hasher;
    use std::io::Read;
    files
        .iter()
        .map(|f| {
            let mut file = std::fs::File::open(f).ok()?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut len = 0u64;
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                h.write(&buf[..n]);
                len += n as u64;
            }
            Some((len, h.finish()))
        })
        .collect()
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Zones whose data changed (their serials went up).
    pub changed: usize,
    /// Origins of those zones (secondaries are NOTIFYed of them).
    pub changed_zones: Vec<Name>,
    /// Zones served after the reload.
    pub zones: usize,
}

impl TableServer {
    /// Loads the zones of `settings`.
    ///
    /// # Errors
    /// The first bad file or line.
    pub fn load(settings: TsSettings) -> Result<Self, ZoneError> {
        let clock = unix_now();
        let mut warnings = Vec::new();
        let (catalog, sources) = read_settled(
            &settings.name,
            &settings.zones,
            SETTLE,
            || {
                warnings.clear();
                load_catalog_noting(&settings, clock, &mut warnings)
            },
            std::thread::sleep,
        )?;
        for w in &warnings {
            warn!("{w}");
        }
        let serial_state = serials::state_path(
            &settings.name,
            &settings.zones,
            std::env::var_os("STATE_DIRECTORY"),
        );
        let saved = serial_state.as_deref().and_then(serials::read);
        let same_files = match (&saved, &sources) {
            (Some(saved), Some(fp)) => saved.files == serials::files_hash(fp),
            _ => false,
        };
        // Synthesized serials: kept, or raised, from what the last run recorded.
        let zones = catalog
            .into_zones()
            .into_iter()
            .map(|z| {
                if !z.soa_synthesized() {
                    return z;
                }
                let recorded = saved
                    .as_ref()
                    .and_then(|s| s.serial_of(&z.origin().to_ascii()));
                let serial = serials::start_serial(recorded, same_files, clock);
                z.with_serial(serial)
            })
            .collect();
        let catalog = Catalog::new(zones);
        // The config allows at most 128 bytes; only a payload over 65 535
        // bytes is refused here, and no TS is started with one.
        let nsid = settings
            .nsid
            .as_ref()
            .and_then(|s| NSIDPayload::new(s.as_bytes().to_vec()).ok());
        let ts = TableServer {
            settings,
            catalog: ArcSwap::from_pointee(catalog),
            metrics: TsMetrics::default(),
            nsid,
            sources: std::sync::Mutex::new(sources.clone()),
            serial_state,
            saved: std::sync::Mutex::new(saved),
        };
        ts.save_serials(sources.as_deref());
        Ok(ts)
    }

    /// Records the synthesized serials in force and `sources` (the files
    /// they stand for, when known) in the state file, when that changes what
    /// it holds.
    /// A failure is logged: serials then start from the clock next time.
    fn save_serials(&self, sources: Option<&[(u64, u64)]>) {
        let Some(path) = &self.serial_state else {
            return;
        };
        let now = serials::Saved {
            // Unknown files (one was renamed over while read): a hash that
            // matches none, so the next start takes a newer serial.
            files: sources.map_or(0, serials::files_hash),
            serials: self
                .catalog
                .load()
                .zones()
                .iter()
                .filter(|z| z.soa_synthesized())
                .map(|z| (z.origin().to_ascii().to_ascii_lowercase(), z.serial()))
                .collect(),
        };
        let mut saved = self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.serials.is_empty() || saved.as_ref() == Some(&now) {
            return;
        }
        match serials::write(path, &now) {
            Ok(()) => *saved = Some(now),
            Err(err) => warn!(
                ts = %self.settings.name,
                path = %path.display(),
                %err,
                "cannot record the SOA serials: after a restart they start from the clock and may go backwards (set STATE_DIRECTORY to a writable folder)"
            ),
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

    /// A snapshot of the zones being served.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Re-reads every zone file and swaps the new catalog in atomically. A
    /// zone whose data changed gets a higher serial (never a lower one); an
    /// unchanged zone keeps its serial. Counted as applied or refused.
    ///
    /// # Errors
    /// Any bad file: nothing is swapped and the old zones keep serving.
    pub fn reload(&self) -> Result<ReloadReport, ZoneError> {
        let result = self.swap_in_fresh();
        self.metrics.record_reload(result.is_ok());
        result
    }

    /// [`TableServer::reload`], uncounted.
    fn swap_in_fresh(&self) -> Result<ReloadReport, ZoneError> {
        let old = self.catalog.load_full();
        let sources = fingerprint(&self.settings.zones);
        let mut last = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sources.is_some() && *last == sources {
            // Not a byte changed: the zones in memory are those files.
            return Ok(ReloadReport {
                changed: 0,
                changed_zones: Vec::new(),
                zones: old.zones().len(),
            });
        }
        let clock = unix_now();
        let mut warnings = Vec::new();
        let (fresh, sources) = read_settled(
            &self.settings.name,
            &self.settings.zones,
            SETTLE,
            || {
                warnings.clear();
                load_catalog_noting(&self.settings, clock, &mut warnings)
            },
            std::thread::sleep,
        )?;
        for w in &warnings {
            warn!("{w}");
        }
        let mut changed_zones = Vec::new();
        let mut zones = Vec::with_capacity(fresh.zones().len());
        for z in fresh.zones() {
            let zone = match old.zones().iter().find(|o| o.origin() == z.origin()) {
                // Unchanged: keep serving the compiled zone already in memory.
                Some(o) if o.same_data(z) => o.clone(),
                Some(o) if z.soa_synthesized() => {
                    // Our serial: up by at least one, and to the clock when it is ahead.
                    let s = serials::next_serial(o.serial(), clock);
                    changed_zones.push(z.origin().clone());
                    z.clone().with_serial(s)
                }
                Some(o) => {
                    // The file's serial: it must go up, or secondaries would
                    // never see the change (RFC 1982 arithmetic).
                    if !serial_newer(z.serial(), o.serial()) {
                        let (idx, line) = z.soa_source().unwrap_or((0, 0));
                        let file = self.settings.zones.get(idx).cloned().unwrap_or_default();
                        return Err(ZoneError::line(
                            &file,
                            line,
                            format!(
                                "zone {} changed but its SOA serial {} is not above {}: raise the serial",
                                z.origin(),
                                z.serial(),
                                o.serial()
                            ),
                        ));
                    }
                    changed_zones.push(z.origin().clone());
                    z.clone()
                }
                None => {
                    changed_zones.push(z.origin().clone());
                    z.clone()
                }
            };
            zones.push(zone);
        }
        let report = ReloadReport {
            changed: changed_zones.len(),
            changed_zones,
            zones: zones.len(),
        };
        self.catalog.store(Arc::new(Catalog::new(zones)));
        // The files did not change while they were read: the fingerprint
        // stands for the zones in force.
        *last = sources.clone();
        drop(last);
        self.save_serials(sources.as_deref());
        Ok(report)
    }

    /// [`TableServer::reload`] with its outcome logged (one line either way).
    /// Returns the origins of the zones that changed.
    pub fn reload_logged(&self) -> Vec<Name> {
        match self.reload() {
            Ok(r) => {
                info!(ts = %self.settings.name, changed = r.changed, zones = r.zones, "reload done");
                r.changed_zones
            }
            Err(err) => {
                warn!(ts = %self.settings.name, %err, "reload refused, old zones keep serving");
                Vec::new()
            }
        }
    }

    fn may_transfer(&self, ip: IpAddr) -> bool {
        self.settings.axfr_allow.iter().any(|n| n.contains(&ip))
    }

    /// The answer to one request (before fault injection), counted in [`TableServer::metrics`].
    pub fn answer(&self, req: Request<'_>) -> Reply {
        let (reply, outcome) = self.respond(req);
        self.metrics.record(outcome);
        reply
    }

    /// The OPT of an answer to `q`: none without one in the query; with the
    /// NSID when one is configured and `q` asks for it (an empty NSID option).
    fn answer_edns(&self, q: &ClientQuery) -> Option<Edns> {
        let theirs = q.edns.as_ref()?;
        let mut edns = dns::response_edns(Some(theirs));
        let asked = matches!(
            theirs.option(EdnsCode::NSID),
            Some(EdnsOption::NSID(p)) if p.as_ref().is_empty()
        );
        if let (true, Some(nsid)) = (asked, &self.nsid) {
            edns.options_mut().insert(EdnsOption::NSID(nsid.clone()));
        }
        Some(edns)
    }

    /// An answer with `rcode` and no records to `q` (its question and OPT
    /// echoed, the NSID added when asked).
    fn rcode_answer(&self, q: &ClientQuery, rcode: ResponseCode) -> Reply {
        let edns = self.answer_edns(q);
        let meta = q.response_metadata(rcode);
        let mut w = ResponseWriter::new(meta, Some(&q.query), edns.as_ref());
        Reply::One(w.finish(dns::TCP_PAYLOAD_MAX))
    }

    /// The answer to one request and what it was, for the counters.
    fn respond(&self, req: Request<'_>) -> (Reply, Outcome) {
        if let Some(done) = self.respond_plain(&req) {
            return done;
        }
        let q = match dns::decode_query(req.raw) {
            Ok(q) => q,
            Err(reject) => {
                let outcome = match &reject {
                    Reject::Drop => Outcome::Unanswered(Unanswered::Malformed),
                    Reject::Rcode(e) => Outcome::Answered(e.rcode),
                };
                let Some(mut resp) = reject.response() else {
                    return (Reply::Drop, outcome);
                };
                // FORMERR, NOTIMP, BADVERS: the NSID goes into the OPT the
                // rejection echoes, when the query could be read that far.
                if let Some(nsid) = &self.nsid
                    && dns::query_wants_nsid(req.raw)
                {
                    let max = dns::client_max_size(req.raw, req.transport);
                    dns::add_nsid(&mut resp, nsid.as_ref(), max);
                }
                return (Reply::One(resp), outcome);
            }
        };
        let refuse = |q: &ClientQuery| {
            (
                self.rcode_answer(q, ResponseCode::Refused),
                Outcome::Answered(ResponseCode::Refused),
            )
        };
        // We are a primary: NOTIFY is for secondaries.
        if q.header.metadata.op_code == OpCode::Notify || q.query.query_class() != DNSClass::IN {
            return refuse(&q);
        }
        let qtype = q.query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            if req.transport != Transport::Tcp || !self.may_transfer(req.src.ip()) {
                return refuse(&q);
            }
            let catalog = self.catalog.load();
            return match catalog
                .zones()
                .iter()
                .find(|z| z.origin().eq_ignore_root(q.query.name()))
            {
                Some(zone) => (
                    Reply::Many(xfr::axfr_messages(zone, &q)),
                    Outcome::Answered(ResponseCode::NoError),
                ),
                None => refuse(&q),
            };
        }
        let catalog = self.catalog.load();
        let question = match encode_question(&q) {
            Some(bytes) => bytes,
            None => return refuse(&q),
        };
        let Some(qname) = Key::read(&question) else {
            return refuse(&q);
        };
        let Some(zone) = catalog.find(&qname) else {
            return refuse(&q);
        };
        let opt = self.answer_edns(&q).and_then(|e| {
            let mut out = Vec::with_capacity(32);
            let mut enc = BinEncoder::new(&mut out);
            Record::from(&e).emit(&mut enc).ok().map(|()| out)
        });
        let asked = answer::Asked {
            id: q.header.metadata.id,
            flags: dns::WireHeader::read(req.raw).map_or(0, |h| h.flags),
            question: &question,
            qname: &qname,
            qtype,
        };
        self.finish(
            zone,
            asked,
            opt.as_deref(),
            q.max_size(req.transport),
            req.transport,
        )
    }

    /// The answer to an ordinary query read in place ([`PlainQuery`]), or
    /// `None` when it needs the full decoder (no zone for it, an NSID to add).
    fn respond_plain(&self, req: &Request<'_>) -> Option<(Reply, Outcome)> {
        let q = PlainQuery::read(req.raw)?;
        if q.opt.is_some_and(|o| o.wants_nsid) && self.nsid.is_some() {
            return None;
        }
        let catalog = self.catalog.load();
        let zone = catalog.find(&q.qname)?;
        let opt = q.opt.map(|o| answer::opt_record(o.dnssec_ok));
        let asked = answer::Asked {
            id: q.id,
            flags: q.flags,
            question: q.question,
            qname: &q.qname,
            qtype: q.qtype,
        };
        let max = q.max_size(req.transport);
        Some(self.finish(
            zone,
            asked,
            opt.as_ref().map(|o| &o[..]),
            max,
            req.transport,
        ))
    }

    /// The answer from `zone`, or a drop for a miss when `on_miss` is silent.
    fn finish(
        &self,
        zone: &Zone,
        asked: answer::Asked<'_>,
        opt: Option<&[u8]>,
        max: u16,
        transport: Transport,
    ) -> (Reply, Outcome) {
        let (msg, w) = answer::assemble(zone, asked, opt, max, transport);
        if w.rcode == ResponseCode::NXDomain && self.settings.on_miss == OnMiss::Silent {
            return (Reply::Drop, Outcome::Unanswered(Unanswered::SilentMiss));
        }
        (Reply::One(msg), Outcome::Answered(w.rcode))
    }
}

/// The question of `q` in wire form, its name uncompressed.
fn encode_question(q: &ClientQuery) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut out);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    q.query.emit(&mut enc).ok()?;
    Some(out)
}

/// Whether `raw` asks the LS's default health probe question, `. SOA`
/// (`[ls.health] query`): one question, the root name, type SOA. The fault
/// knobs' delay spares such queries: a probe waits at most its timeout
/// (500 ms by default), so a delay longer than that would keep every backend
/// down and the experiment would measure health checks instead of client
/// latency. Drops still apply to probes, as real packet loss does: a
/// backend loses `fall` probes in a row only as often as the drop share says.
pub fn looks_like_health_probe(raw: &[u8]) -> bool {
    let Some(h) = dns::WireHeader::read(raw) else {
        return false;
    };
    // Root name (one zero byte) at offset 12, then QTYPE SOA (6).
    !h.is_response() && h.qdcount == 1 && raw.get(12..15) == Some(&[0, 0, 6][..])
}

impl Handler for TableServer {
    fn handle(&self, req: Request<'_>) -> Action {
        let f = self.settings.fault;
        if f.drop_ratio > 0.0 && rand::random::<f64>() < f.drop_ratio {
            self.metrics.record(Outcome::Unanswered(Unanswered::Fault));
            return Action::Now(Reply::Drop);
        }
        let probe = looks_like_health_probe(req.raw);
        let reply = self.answer(req);
        if f.delay_ms > 0 && f.delay_ratio > 0.0 && !probe && rand::random::<f64>() < f.delay_ratio
        {
            let delay = Duration::from_millis(f.delay_ms);
            return Action::Later(Box::pin(async move {
                tokio::time::sleep(delay).await;
                reply
            }));
        }
        Action::Now(reply)
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn a_fingerprint_changes_with_any_byte_and_not_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, "www.example.com 192.0.2.1 A\n").unwrap();
        let files = vec![f.clone()];
        let first = fingerprint(&files).unwrap();
        assert_eq!(fingerprint(&files).unwrap(), first, "same bytes");
        std::fs::write(&f, "www.example.com 192.0.2.2 A\n").unwrap();
        assert_ne!(fingerprint(&files).unwrap(), first, "one byte changed");
        assert!(fingerprint(&[dir.path().join("missing")]).is_none());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod settle_tests {
    use super::*;

    /// A read during which the file is rewritten (as a writer rewriting it
    /// in place would) is never kept; a read of settled files is.
    #[test]
    fn a_file_rewritten_while_read_is_read_again_and_never_kept_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, "whole version 1\n").unwrap();
        let files = vec![f.clone()];
        let mut reads = 0;
        let mut pauses = Vec::new();
        let (got, fp) = read_settled(
            "t",
            &files,
            Duration::ZERO,
            || {
                reads += 1;
                let text = std::fs::read_to_string(&f).unwrap();
                if reads <= 2 {
                    // The writer is at work during the first two reads.
                    std::fs::write(&f, format!("half {reads}")).unwrap();
                }
                Ok(text)
            },
            |d| pauses.push(d),
        )
        .unwrap();
        assert_eq!(reads, 3);
        assert_eq!(got, "half 2", "the read of settled bytes is kept");
        assert_eq!(fp, fingerprint(&files));
        assert_eq!(
            pauses,
            [Duration::from_millis(50), Duration::from_millis(100)]
        );
    }

    #[test]
    fn files_that_never_settle_are_refused_and_a_bad_settled_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, "x").unwrap();
        let files = vec![f.clone()];
        let mut n = 0;
        let err = read_settled(
            "t",
            &files,
            Duration::ZERO,
            || {
                n += 1;
                std::fs::write(&f, n.to_string()).unwrap();
                Ok(())
            },
            |_| {},
        )
        .unwrap_err();
        assert_eq!(n, READ_TRIES);
        assert!(
            matches!(
                err,
                ZoneError::Unsettled {
                    tries: READ_TRIES,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("renaming it over the old"),
            "{err}"
        );
        let bad = read_settled::<()>(
            "t",
            &files,
            Duration::ZERO,
            || Err(ZoneError::line(&f, 1, "bad")),
            |_| panic!("no retry"),
        )
        .unwrap_err();
        assert_eq!(bad, ZoneError::line(&f, 1, "bad"));
    }

    /// A file renamed over the one being read (the safe way to replace
    /// it) was read whole: kept, without a fingerprint; a short file that
    /// grows just after the read (a writer between truncating and writing)
    /// is read again.
    #[test]
    fn a_file_renamed_over_is_kept_and_one_growing_after_the_read_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, "old").unwrap();
        let files = vec![f.clone()];
        let (got, fp) = read_settled(
            "t",
            &files,
            Duration::ZERO,
            || {
                let text = std::fs::read_to_string(&f).unwrap();
                let tmp = dir.path().join("t.new");
                std::fs::write(&tmp, "new").unwrap();
                std::fs::rename(&tmp, &f).unwrap();
                Ok(text)
            },
            |_| panic!("no retry"),
        )
        .unwrap();
        assert_eq!((got.as_str(), fp), ("old", None));

        std::fs::write(&f, "").unwrap();
        let mut reads = 0;
        let mut pauses = Vec::new();
        let settle = Duration::from_millis(10);
        read_settled(
            "t",
            &files,
            settle,
            || {
                reads += 1;
                Ok(())
            },
            |d| {
                pauses.push(d);
                if pauses.len() == 1 {
                    // The writer goes on while the TS looks away.
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&f)
                        .and_then(|mut w| std::io::Write::write_all(&mut w, b"rest"))
                        .unwrap();
                }
            },
        )
        .unwrap();
        assert_eq!(reads, 2, "read again");
        assert_eq!(pauses, [settle, READ_BACKOFF, settle]);
    }

    #[test]
    fn the_default_health_probe_is_recognised_and_nothing_else() {
        use hickory_proto::op::{Message, Query};
        let q = |name: &str, t: RecordType| {
            let mut m = Message::query();
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
            m.to_vec().unwrap()
        };
        assert!(looks_like_health_probe(&q(".", RecordType::SOA)));
        assert!(!looks_like_health_probe(&q(".", RecordType::NS)));
        assert!(!looks_like_health_probe(&q("example.", RecordType::SOA)));
        let mut resp = q(".", RecordType::SOA);
        resp[2] |= 0x80;
        assert!(!looks_like_health_probe(&resp), "a response");
        assert!(!looks_like_health_probe(&[0u8; 5]));
    }
}
