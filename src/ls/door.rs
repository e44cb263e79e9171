//! The door every client query passes before either driver forwards it,
//! as its steps in order ([`QueryAtDoor::pass`]): the ACL and the rate limit (before
//! a byte of the query is read), then the query read once (header and
//! question in place, or decoded when it is not plain), the anycast probe's
//! question, the dynamic blocks, the query rules, the LS's own identity
//! answers, the opcodes it does not forward (a backend's NOTIFY flushes the
//! cache, the others are refused), zone transfers refused, forwarding loops
//! refused, and the route. The first step that answers (or drops) the query
//! ends it there; the order is the behaviour (blocks before rules and
//! opcodes, the ACL before all). What it lets through is [`Admitted`], what
//! it answers an [`Admission::Reply`]. The balancer holds the snapshot and
//! the counters it reads ([`super::balancer::Balancer::admit_on`]).
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use hickory_proto::op::{OpCode, ResponseCode};

use super::blocked::{block_check, blocked, blocked_reject, qtype_of, question_of};
use super::dynblock::{DynBlocks, WorkerCounts};
use super::identity::ProbeToken;
use super::invalidate::{self, FlushCounters, FlushQueue};
use super::order;
use super::rules::{self, Act, QueryView, RuleHit};
use super::state::{Job, LsMetrics, LsState};
use super::suffix;
use crate::config::RuleTransport;
use crate::dns::{self, ClientQuery, HEADER_LEN, Transport};
use crate::dnstap::{Dnstap, Staged, TapTransport};
use crate::guard::rate::RateVerdict;
use crate::logging::QueryLine;
use crate::server::{Reply, Request, Via};

/// The balancer's parts the door reads and counts into.
pub(super) struct Parts<'a> {
    pub(super) metrics: &'a LsMetrics,
    pub(super) dynblocks: &'a DynBlocks,
    pub(super) probe_token: &'a ProbeToken,
    pub(super) flushes: (&'a FlushCounters, &'a FlushQueue),
    pub(super) dnstap: &'a Dnstap,
    /// DNS Cookies' server secrets of the LS's own answers.
    pub(super) cookies: &'a crate::dns::cookie::ServerSecrets,
}

/// One client query at the door, on one snapshot.
pub(super) struct QueryAtDoor<'a> {
    parts: Parts<'a>,
    state: &'a LsState,
    req: &'a Request<'a>,
    /// A fast-path worker's own counts for the dynamic blocks (`None`: the
    /// async path's shards).
    mine: Option<&'a mut WorkerCounts>,
    /// A fast-path worker's round of dnstap frames (a rule's frame).
    staged: Option<&'a mut Staged>,
    /// A query the worker's queue gate may still shed: one the door would
    /// answer itself is dropped, nothing answered or counted.
    late: bool,
    /// The door answered it itself, counted as a query and an answer.
    answered: bool,
}

/// What the door read of a query it lets through.
struct Read {
    client_id: u16,
    question_end: usize,
    route: Option<usize>,
    hit: Option<RuleHit>,
}

impl<'a> QueryAtDoor<'a> {
    /// `req` at the door on `state`, counted into `parts` (and `mine`,
    /// `staged`, a fast-path worker's own).
    pub(super) fn new(
        parts: Parts<'a>,
        state: &'a LsState,
        req: &'a Request<'a>,
        (mine, staged): (Option<&'a mut WorkerCounts>, Option<&'a mut Staged>),
        late: bool,
    ) -> Self {
        QueryAtDoor {
            parts,
            state,
            req,
            mine,
            staged,
            late,
            answered: false,
        }
    }

    /// Whether the door answered the query itself and counted the answer.
    pub(super) fn answered(&self) -> bool {
        self.answered
    }

    /// The door's steps, in order: the query admitted for forwarding, or
    /// the reply of the first step that answers (or drops) it.
    pub(super) fn pass(&mut self) -> Result<Admitted, Reply> {
        self.acl_and_rate_limit()?;
        let read = match dns::peek_plain_query(self.req.raw) {
            Some((id, end)) => self.read_plain(id, end)?,
            None => self.read_decoded()?,
        };
        self.refuse_zone_transfer(read.question_end)?;
        self.refuse_loop(read.question_end)?;
        Ok(self.admit(read))
    }

    /// A reply of the door's own (malformed, NOTIFY, zone transfers, loops,
    /// blocks, rules, identity): a query and its answer, both counted, so
    /// that every answer counted answers a query counted. A late query's is
    /// dropped, nothing counted.
    fn answer(&mut self, bytes: Option<Vec<u8>>) -> Reply {
        if self.late {
            return Reply::Drop;
        }
        let req = self.req;
        let stamped = bytes.map(|mut b| {
            let query = (req.raw, req.src.ip(), req.transport);
            super::cookies::stamp(self.parts.cookies, query, &mut b);
            b
        });
        let reply = stamped.map_or(Reply::Drop, Reply::One);
        if matches!(reply, Reply::One(_)) {
            self.parts.metrics.queries.fetch_add(1, Relaxed);
            self.answered = true;
        }
        self.parts.metrics.count_reply(&reply);
        reply
    }

    /// Refused by the ACL or over the rate limit: counted by those counters
    /// only, neither as a query nor as an answer.
    fn turned_away(&self, bytes: Option<Vec<u8>>) -> Reply {
        match bytes {
            Some(b) if !self.late => Reply::One(b),
            _ => Reply::Drop,
        }
    }

    /// The ACL and the rate limit: who may be answered at all, and
    /// how often, decided before a byte of the query is read (a client
    /// outside `allow` or over its rate gets no FORMERR or REFUSED beyond
    /// the limit either).
    fn acl_and_rate_limit(&mut self) -> Result<(), Reply> {
        let (state, req, late) = (self.state, self.req, self.late);
        let verdict = match &state.rate {
            Some(rate) if req.transport == Transport::Udp => rate.check(req.src.ip()),
            _ => RateVerdict::Pass,
        };
        // A late one turned away is shed (the worker counts it so), not
        // counted here too.
        if verdict != RateVerdict::Pass && !late {
            self.parts.metrics.rate_limited.fetch_add(1, Relaxed);
        }
        if !state.allow.contains(req.src.ip()) {
            if !late {
                self.parts.metrics.refused_acl.fetch_add(1, Relaxed);
            }
            // REFUSED within the rate limit; past it, nothing (a TC=1 slip
            // would only send it to TCP to be refused there).
            return Err(match verdict {
                RateVerdict::Pass => {
                    self.turned_away(dns::error_for(req.raw, ResponseCode::Refused))
                }
                RateVerdict::Drop | RateVerdict::Slip => Reply::Drop,
            });
        }
        match verdict {
            RateVerdict::Pass => Ok(()),
            RateVerdict::Drop => Err(Reply::Drop),
            RateVerdict::Slip => {
                // A query that does not even decode gets no slip either.
                let tc = dns::decode_query(req.raw)
                    .ok()
                    .map(|q| dns::truncated_for(&q));
                Err(self.turned_away(tc))
            }
        }
    }

    /// A plain query read in place (header and question are all
    /// the forwarding path reads; the question's name picks the pool): the
    /// anycast probe's question, the blocks, the rules, the identity
    /// questions, in that order.
    fn read_plain(&mut self, client_id: u16, end: usize) -> Result<Read, Reply> {
        let raw = self.req.raw;
        let qname = raw.get(HEADER_LEN..).unwrap_or_default();
        let qtype = end
            .checked_sub(4)
            .and_then(|at| dns::u16_at(raw, at))
            .unwrap_or(0);
        self.anycast_probe(end)?;
        self.blocks(qname, qtype, None)?;
        let hit = self.rules(end, None)?;
        self.identity_question(end)?;
        let name = raw.get(HEADER_LEN..end).unwrap_or_default();
        Ok(Read {
            client_id,
            question_end: end,
            route: self.state.route_of(name),
            hit,
        })
    }

    /// A query that is not plain, decoded: one that cannot be read
    /// or is of an opcode the LS does not serve ([`QueryAtDoor::unreadable`]), the
    /// blocks, the rules, NOTIFY and the other opcodes, in that order; a
    /// well formed but unusual one (e.g. a compressed question) is
    /// forwarded.
    fn read_decoded(&mut self) -> Result<Read, Reply> {
        let q = match dns::decode_query(self.req.raw) {
            // Late: dropped whatever a rule would make of it.
            Err(_) if self.late => return Err(Reply::Drop),
            Err(reject) => {
                // A query for the LS's cookie alone (RFC 7873 §5.4).
                return Err(match dns::cookie::cookie_only_answer(self.req.raw, 0) {
                    Some(answer) => self.answer(Some(answer)),
                    None => self.unreadable(reject),
                });
            }
            Ok(q) => q,
        };
        let wire = suffix::lower_wire(q.query.name());
        self.blocks(&wire, u16::from(q.query.query_type()), None)?;
        let hit = self.rules(q.question_end, Some(&wire))?;
        self.opcode(&q)?;
        Ok(Read {
            client_id: q.header.metadata.id,
            question_end: q.question_end,
            route: self.state.route_of(&wire),
            hit,
        })
    }

    /// The anycast probe's question (its token): the LS's own answer,
    /// before any block or rule.
    fn anycast_probe(&mut self, end: usize) -> Result<(), Reply> {
        let token = self.parts.probe_token;
        match self.state.identity.for_probe(self.req.raw, end, token) {
            Some(me) => Err(self.answer(Some(me))),
            None => Ok(()),
        }
    }

    /// The dynamic blocks in force (as in dnsdist: no rule, not even
    /// `allow`, spares a blocked client, and every query counts toward
    /// them): a blocked client gets its block's answer. `err`: the door's
    /// own answer to a message it cannot serve (the block's answer is built
    /// from what could be read of it).
    fn blocks(
        &mut self,
        qname: &[u8],
        qtype: u16,
        err: Option<&dns::ErrorAnswer>,
    ) -> Result<(), Reply> {
        let mine = self.mine.as_deref_mut();
        let (req, cookies) = (self.req, self.parts.cookies);
        let proven = || {
            let sent = crate::dns::cookie::find(req.raw);
            super::cookies::proven(cookies, sent, req.src.ip())
        };
        let Some(stop) = block_check((self.parts.dynblocks, proven), req, (qname, qtype), mine)
        else {
            return Ok(());
        };
        let bytes = match err {
            _ if self.late => None,
            Some(err) => blocked_reject(err, stop),
            None => blocked(self.req.raw, stop),
        };
        Err(self.answer(bytes))
    }

    /// The query rules on what was read (`name`: the question's name in
    /// plain wire form, when the question's own is not): a rule's made-up
    /// answer (or drop) ends the query here, before the cache; else the
    /// hit, if any, for the route ([`QueryAtDoor::admit`]).
    fn rules(&mut self, end: usize, name: Option<&[u8]>) -> Result<Option<RuleHit>, Reply> {
        let tap = (self.state, self.parts.dnstap, self.staged.take());
        let req = (self.req, Some(self.parts.cookies));
        let hit = rule_hit(tap, req, end, name, self.late);
        let Some(hit) = hit.filter(|h| h.act.answers()) else {
            return Ok(hit);
        };
        let bytes = (!self.late)
            .then(|| {
                let req = self.req;
                rules::answer(&self.state.rules, hit, req.raw, req.transport)
            })
            .flatten();
        Err(self.answer(bytes))
    }

    /// `id.server.`/`hostname.bind.` CH TXT: the LS's own answer (RFC 4892),
    /// or REFUSED under `hide_identity`.
    fn identity_question(&mut self, end: usize) -> Result<(), Reply> {
        match self.state.identity.answer(self.req.raw, end) {
            Some(me) => Err(self.answer(Some(me))),
            None => Ok(()),
        }
    }

    /// A message that does not decode as a query (UPDATE, STATUS, IQUERY,
    /// DSO, a question that cannot be read): the blocks first (a blocked
    /// client gets its block's answer), then the rules on an opcode the LS
    /// does not serve ([`other_opcode`]), else the door's error.
    fn unreadable(&mut self, reject: dns::Reject) -> Reply {
        if let dns::Reject::Rcode(err) = &reject
            && let Err(reply) = self.blocks(&question_of(err), qtype_of(err), Some(err))
        {
            return reply;
        }
        let ruled = other_opcode(self.state, self.parts.dnstap, self.req, reject);
        self.answer(ruled.response())
    }

    /// The opcodes the LS does not forward: a backend's NOTIFY flushes the
    /// zone from the cache ([`invalidate::answer`]); any other but QUERY is
    /// refused.
    fn opcode(&mut self, q: &ClientQuery) -> Result<(), Reply> {
        let req = self.req;
        match q.header.metadata.op_code {
            OpCode::Notify => {
                let flushed =
                    invalidate::answer(self.state, self.parts.flushes, (req.raw, q), req.src.ip());
                Err(self.answer(flushed))
            }
            OpCode::Query => Ok(()),
            _ => Err(self.answer(dns::error_for(req.raw, ResponseCode::Refused))),
        }
    }

    /// Zone transfers belong to a table server: never forwarded (a TS
    /// trusts the LS's address, which its `axfr_allow` may cover).
    fn refuse_zone_transfer(&mut self, question_end: usize) -> Result<(), Reply> {
        if !is_zone_transfer(self.req.raw, question_end) {
            return Ok(());
        }
        Err(self.answer(dns::error_with_ede(
            self.req.raw,
            ResponseCode::Refused,
            dns::EDE_NOT_SUPPORTED,
            "zone transfers are served by the table servers, not the LS",
        )))
    }

    /// A query this LS sent upstream came back: a forwarding loop, refused.
    fn refuse_loop(&mut self, question_end: usize) -> Result<(), Reply> {
        if !self.state.mark.carried_by(self.req.raw, question_end) {
            return Ok(());
        }
        self.parts.metrics.loops_refused.fetch_add(1, Relaxed);
        Err(self.answer(dns::error_for(self.req.raw, ResponseCode::Refused)))
    }

    /// The route: a rule's pool, or its delay (a rule's `allow` forwards as
    /// usual), else the question's; what the drivers need of the query read
    /// once here.
    fn admit(&self, read: Read) -> Admitted {
        let (state, req) = (self.state, self.req);
        let Read {
            client_id,
            question_end,
            route,
            hit,
        } = read;
        let (route, delay) = match hit.map(|h| h.act) {
            Some(Act::Pool(pool)) => (Some(pool), None),
            Some(Act::Delay(d)) => (route, Some(d)),
            _ => (route, None),
        };
        // Only for a route whose order reads it (0 for the others).
        let name_hash = if order::reads_name(state.route_at(route).policy.order) {
            let name_end = question_end.saturating_sub(4);
            order::name_hash(req.raw.get(HEADER_LEN..name_end).unwrap_or_default())
        } else {
            0
        };
        // The query log (debug): read from the question only when it is on.
        let log = QueryLine::enabled().then(|| {
            QueryLine::new(
                req.src,
                req.raw.get(HEADER_LEN..question_end).unwrap_or_default(),
            )
        });
        // Taken before the query can be sent: a flush that begins later
        // keeps its answer out of the cache (`PacketCache::insert_since`).
        let cache_generation = state
            .route_at(route)
            .cache
            .as_ref()
            .map_or(0, |c| c.generation());
        Admitted {
            client_id,
            question_end,
            transport: req.transport,
            name_hash,
            route,
            log,
            cache_generation,
            delay,
            client: req.src,
            unnoted: hit.filter(|_| self.late),
        }
    }
}

/// What becomes of a client query at the door ([`Balancer::admit`](super::balancer::Balancer::admit)).
pub enum Admission {
    /// Answered (or dropped) at once: malformed, refused, rate limited.
    Reply(Reply),
    /// To be forwarded, on this snapshot.
    Forward(Arc<LsState>, Admitted),
}

/// A client query admitted for forwarding: what was read of it, not yet
/// its bytes (the caller decides where they go, or to shed it first).
#[derive(Debug)]
pub struct Admitted {
    client_id: u16,
    question_end: usize,
    transport: Transport,
    name_hash: u64,
    route: Option<usize>,
    log: Option<QueryLine>,
    cache_generation: u64,
    delay: Option<std::time::Duration>,
    /// The client's address ([`Job::client`]; the driver sets the LS's
    /// address it reached).
    client: std::net::SocketAddr,
    /// A late query's rule hit, not counted or logged yet
    /// ([`Balancer::spared`](super::balancer::Balancer::spared) does).
    pub(super) unnoted: Option<RuleHit>,
}

impl Admitted {
    /// How long a `delay_ms` rule holds the query before it goes on
    /// (UDP only); `None`: at once.
    pub fn delay(&self) -> Option<std::time::Duration> {
        self.delay
    }

    /// The client (past a `proxy_from` sender's PROXY header, the one it
    /// names).
    pub fn client(&self) -> std::net::SocketAddr {
        self.client
    }

    /// End of the question section in the query.
    pub fn question_end(&self) -> usize {
        self.question_end
    }

    /// The pool the query goes to (an index of [`LsState::pools`]); `None`:
    /// every backend.
    pub fn route(&self) -> Option<usize> {
        self.route
    }

    /// The job, with `raw` holding the query's bytes as received.
    pub fn into_job(self, raw: Vec<u8>) -> Job {
        Job {
            raw,
            client_id: self.client_id,
            question_end: self.question_end,
            transport: self.transport,
            name_hash: self.name_hash,
            route: self.route,
            log: self.log,
            cache_generation: self.cache_generation,
            ecs: None,
            client: (self.client, None),
        }
    }
}

/// The query rule that acts on the client query of `req` (its question
/// ending at `question_end`; `name`: its name in plain wire form, when the
/// question's own is not), counted and logged unless `late` (a query the
/// queue gate may still shed: [`Balancer::spared`](super::balancer::Balancer::spared) counts it once it is
/// not); `None` without rules or when none acts.
fn rule_hit(
    (state, tap, staged): (&LsState, &Dnstap, Option<&mut Staged>),
    (req, cookies): (&Request<'_>, Option<&crate::dns::cookie::ServerSecrets>),
    question_end: usize,
    name: Option<&[u8]>,
    late: bool,
) -> Option<RuleHit> {
    if state.rules.is_empty() {
        return None;
    }
    let mut view = rule_view(req, question_end, name)?;
    // Only a query with a server cookie is checked (one SipHash).
    let sent = view.opt.and_then(crate::dns::cookie::in_opt);
    view.cookie_ok = cookies.is_some_and(|c| super::cookies::proven(c, sent, req.src.ip()));
    if late {
        return state.rules.judge_unnoted(&view, std::time::Instant::now());
    }
    // A `log = true` hit goes to dnstap when it is on, else to the log.
    let tapped = tap.is_on();
    let hit = state
        .rules
        .judge_to(&view, std::time::Instant::now(), tapped)?;
    if tapped {
        tap_rule((state, tap, staged), req, hit);
    }
    Some(hit)
}

/// The query of `req` as the rules see it ([`rule_hit`]), its server
/// cookie not checked.
fn rule_view<'a>(
    req: &Request<'a>,
    question_end: usize,
    name: Option<&'a [u8]>,
) -> Option<QueryView<'a>> {
    let transport = match req.via {
        Via::Udp => RuleTransport::Udp,
        Via::Tcp => RuleTransport::Tcp,
        Via::Dot => RuleTransport::Dot,
        Via::Doh => RuleTransport::Doh,
        Via::Doq => RuleTransport::Doq,
    };
    let view = QueryView::read(req.raw, question_end, req.src.ip(), transport)?;
    Some(name.map_or(view, |n| view.with_name(n)))
}

/// A `log = true` rule's `hit` on `req` to dnstap (into a fast-path
/// worker's `staged` round, after its query's CLIENT_QUERY, when given).
fn tap_rule(
    (state, tap, staged): (&LsState, &Dnstap, Option<&mut Staged>),
    req: &Request<'_>,
    hit: RuleHit,
) {
    if let Some(rule) = state.rules.logged(hit) {
        let who = (TapTransport::of(req.via), req.src, req.local);
        super::tap::rule_matched(tap, who, req.raw, (rule, hit.act), staged);
    }
}

/// [`rule_hit`]'s count and log of `hit`, left for later by a late query
/// ([`Balancer::spared`](super::balancer::Balancer::spared)).
pub(super) fn note_rule(
    (state, tap, staged): (&LsState, &Dnstap, Option<&mut Staged>),
    req: &Request<'_>,
    question_end: usize,
    name: Option<&[u8]>,
    hit: RuleHit,
) {
    let Some(view) = rule_view(req, question_end, name) else {
        return;
    };
    let tapped = tap.is_on();
    state
        .rules
        .note(hit, &view, std::time::Instant::now(), tapped);
    if tapped {
        tap_rule((state, tap, staged), req, hit);
    }
}

/// A message of an opcode the LS does not serve (UPDATE, STATUS, IQUERY,
/// DSO: `reject` is its NOTIMP) with one plain question, checked against
/// the query rules all the same (their `opcode` condition is for these
/// too): a rule that drops it drops it, one that refuses, answers NXDOMAIN
/// or SERVFAIL answers so; otherwise, or without such a rule, the NOTIMP.
fn other_opcode(
    state: &LsState,
    tap: &Dnstap,
    req: &Request<'_>,
    reject: dns::Reject,
) -> dns::Reject {
    let dns::Reject::Rcode(mut err) = reject else {
        return reject;
    };
    let Some(query) = err
        .query
        .as_ref()
        .filter(|_| err.rcode == ResponseCode::NotImp)
    else {
        return dns::Reject::Rcode(err);
    };
    // The question's name as sent, uncompressed, is what the rules read.
    let wire = suffix::lower_wire(query.name());
    let end = HEADER_LEN + wire.len() + 4;
    let plain = req
        .raw
        .get(HEADER_LEN..HEADER_LEN + wire.len())
        .is_some_and(|n| n.eq_ignore_ascii_case(&wire));
    let hit = (plain && end <= req.raw.len())
        .then(|| rule_hit((state, tap, None), (req, None), end, Some(&wire), false))
        .flatten();
    match hit.map(|h| h.act) {
        Some(Act::Drop) => dns::Reject::Drop,
        Some(Act::Refuse) => {
            err.rcode = ResponseCode::Refused;
            dns::Reject::Rcode(err)
        }
        Some(Act::Nxdomain) => {
            err.rcode = ResponseCode::NXDomain;
            dns::Reject::Rcode(err)
        }
        Some(Act::Servfail) => {
            err.rcode = ResponseCode::ServFail;
            dns::Reject::Rcode(err)
        }
        _ => dns::Reject::Rcode(err),
    }
}

/// Whether the query in `raw`, whose question ends at `question_end`, asks
/// for a zone transfer (QTYPE AXFR or IXFR).
fn is_zone_transfer(raw: &[u8], question_end: usize) -> bool {
    const IXFR: u16 = 251;
    const AXFR: u16 = 252;
    let qtype = question_end
        .checked_sub(4)
        .and_then(|at| dns::u16_at(raw, at));
    matches!(qtype, Some(IXFR | AXFR))
}
