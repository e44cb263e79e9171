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

/// RFC 1982: `a` is newer than `b` in serial-number arithmetic.
fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
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
}

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
        // Taken before and after the files are read: kept only when they
        // agree, so that it stands for what was loaded.
        let sources = fingerprint(&settings.zones);
        let catalog = load_catalog(&settings, unix_now())?;
        let sources = if fingerprint(&settings.zones) == sources {
            sources
        } else {
            None
        };
        // The config allows at most 128 bytes; only a payload over 65 535
        // bytes is refused here, and no TS is started with one.
        let nsid = settings
            .nsid
            .as_ref()
            .and_then(|s| NSIDPayload::new(s.as_bytes().to_vec()).ok());
        Ok(TableServer {
            settings,
            catalog: ArcSwap::from_pointee(catalog),
            metrics: TsMetrics::default(),
            nsid,
            sources: std::sync::Mutex::new(sources),
        })
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
        let fresh = load_catalog(&self.settings, unix_now())?;
        let mut changed_zones = Vec::new();
        let mut zones = Vec::with_capacity(fresh.zones().len());
        for z in fresh.zones() {
            let zone = match old.zones().iter().find(|o| o.origin() == z.origin()) {
                // Unchanged: keep serving the compiled zone already in memory.
                Some(o) if o.same_data(z) => o.clone(),
                Some(o) if z.soa_synthesized() => {
                    // Our serial: up by at least one, and to the clock when it is ahead.
                    let s = z.serial().max(o.serial().wrapping_add(1));
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
        // Kept only when the files did not change while they were read, so
        // the fingerprint always stands for the zones in force.
        let after = fingerprint(&self.settings.zones);
        *last = if after == sources { sources } else { None };
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

impl Handler for TableServer {
    fn handle(&self, req: Request<'_>) -> Action {
        let f = self.settings.fault;
        if f.drop_ratio > 0.0 && rand::random::<f64>() < f.drop_ratio {
            self.metrics.record(Outcome::Unanswered(Unanswered::Fault));
            return Action::Now(Reply::Drop);
        }
        let reply = self.answer(req);
        if f.delay_ms > 0 && f.delay_ratio > 0.0 && rand::random::<f64>() < f.delay_ratio {
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
