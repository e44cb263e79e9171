//! A TS's `[[ts.service]]`s compiled once at start ([`Services`]): each
//! endpoint's answer record in wire form, the groups by number, the views'
//! networks and group orders, the fallback CNAME, and the checker's
//! [`Target`]s (one per endpoint, services in order, so the [`LiveSet`]'s
//! index of an endpoint is its service's `base` plus its own).
//!
//! [`LiveSet`]: super::check::LiveSet
use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use super::check::{CheckSpec, Label, Probe, Target};
use crate::config::{CheckConfig, CheckKind, Select, ServiceConfig, WhenAllDown};

/// The owner of every answer record: a pointer to the question's name.
const OWNER_PTR: [u8; 2] = [0xC0, 0x0C];

/// An address family, as the query type picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrFamily {
    /// A records, IPv4 endpoints.
    V4 = 0,
    /// AAAA records, IPv6 endpoints.
    V6 = 1,
}

impl AddrFamily {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> AddrFamily {
        match addr {
            IpAddr::V4(_) => AddrFamily::V4,
            IpAddr::V6(_) => AddrFamily::V6,
        }
    }
}

/// One endpoint of a service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its address.
    pub addr: IpAddr,
    /// Its share under `weighted`.
    pub weight: u32,
    /// Its group, an index into [`Service::groups`].
    pub group: usize,
    /// Its answer record (owner a pointer to the question, class IN, the
    /// service's TTL), in wire form.
    pub record: Vec<u8>,
}

/// One view: client networks and the group order they get.
#[derive(Debug, Clone)]
pub struct View {
    /// The client networks.
    pub clients: Vec<IpNet>,
    /// Group indexes, in the order tried.
    pub order: Vec<usize>,
}

/// One service, compiled.
#[derive(Debug, Clone)]
pub struct Service {
    /// The owner name.
    pub name: Name,
    /// The owner name in wire form, lower-cased.
    pub key: Vec<u8>,
    /// `all`, `weighted` or `failover`.
    pub select: Select,
    /// Most addresses in an answer.
    pub max_answers: usize,
    /// Endpoints drawn per answer (`weighted`).
    pub pick: usize,
    /// Live endpoints a group needs.
    pub min_live: usize,
    /// The answer with no endpoint live.
    pub when_all_down: WhenAllDown,
    /// The endpoints, in config order.
    pub endpoints: Vec<Endpoint>,
    /// The group names, in the order they first appear.
    pub groups: Vec<String>,
    /// The views, in config order (the first holding the client applies).
    pub views: Vec<View>,
    /// The index of its first endpoint in the checker's list.
    pub base: usize,
    /// The fallback CNAME record in wire form (`when_all_down = { fallback }`).
    pub fallback: Option<Vec<u8>>,
    /// The ECS scope of its answers by family: the longest view network of
    /// that family (0 without views of it).
    pub scope: [u8; 2],
}

impl Service {
    /// The view index (1-based; 0: none) of a client at `addr`.
    pub fn view_of(&self, addr: IpAddr) -> usize {
        self.views
            .iter()
            .position(|v| v.clients.iter().any(|n| n.contains(&addr)))
            .map_or(0, |i| i + 1)
    }
}

/// Every service of a TS, and its names for the answer path.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// The services, in config order.
    pub list: Vec<Service>,
    /// Lower-cased wire names to indexes into `list`.
    by_name: HashMap<Vec<u8>, usize>,
    /// By service, the origin (lower-cased wire form) of the zone it was
    /// loaded into at start: the only zone it answers in.
    zones: Vec<Vec<u8>>,
}

impl Services {
    /// Compiles `configs`.
    pub fn compile(configs: &[ServiceConfig]) -> Services {
        let mut list = Vec::with_capacity(configs.len());
        let mut by_name = HashMap::with_capacity(configs.len());
        let mut base = 0;
        for c in configs {
            let s = compile_one(c, base);
            base += s.endpoints.len();
            by_name.insert(s.key.clone(), list.len());
            list.push(s);
        }
        Services {
            list,
            by_name,
            zones: Vec::new(),
        }
    }

    /// Notes each service's zone: `zone_of(key)`, the origin of the zone
    /// holding the name `key` (lower-cased wire form).
    pub fn set_zones(&mut self, zone_of: impl Fn(&[u8]) -> Option<Vec<u8>>) {
        self.zones = self
            .list
            .iter()
            .map(|s| zone_of(&s.key).unwrap_or_default())
            .collect();
    }

    /// The origin of service `idx`'s zone (lower-cased wire form).
    pub fn zone_of(&self, idx: usize) -> Option<&[u8]> {
        self.zones.get(idx).map(Vec::as_slice)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The service named by the lower-cased wire name `key`.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        self.by_name.get(key).copied()
    }

    /// Endpoints in all.
    pub fn endpoint_count(&self) -> usize {
        self.list.iter().map(|s| s.endpoints.len()).sum()
    }
}

/// The checker's targets of `configs`: one per endpoint, services in order.
pub fn targets(configs: &[ServiceConfig]) -> Vec<(Target, Vec<Label>)> {
    let mut out = Vec::new();
    for c in configs {
        let spec = check_spec(&c.check);
        for e in &c.endpoint {
            let label = Label {
                service: c.name.to_ascii(),
                endpoint: e.addr.to_string(),
            };
            let target = Target {
                addr: e.addr,
                check: spec.clone(),
            };
            out.push((target, vec![label]));
        }
    }
    out
}

/// The checker's view of `check`.
fn check_spec(c: &CheckConfig) -> CheckSpec {
    let port = c.port.unwrap_or(0);
    let probe = match c.kind {
        CheckKind::None => Probe::None,
        CheckKind::Tcp => Probe::Tcp { port },
        CheckKind::Http => Probe::Http {
            port,
            path: c.path.clone(),
            expect: c.expect,
            host: c.host.clone(),
        },
        CheckKind::Dns => Probe::Dns {
            port,
            qname: c.query.name.to_ascii(),
            qtype: u16::from(c.query.rtype),
        },
    };
    CheckSpec {
        probe,
        interval_ms: c.interval_ms,
        timeout_ms: c.timeout_ms,
        rise: c.rise,
        fall: c.fall,
    }
}

/// `name` in wire form, lower-cased.
pub fn lower_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// One answer record: owner the question's name, class IN.
fn record(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(12 + rdata.len());
    r.extend_from_slice(&OWNER_PTR);
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&ttl.to_be_bytes());
    let len = u16::try_from(rdata.len()).unwrap_or(u16::MAX);
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn compile_one(c: &ServiceConfig, base: usize) -> Service {
    let groups: Vec<String> = c.groups().into_iter().map(str::to_owned).collect();
    let group_of = |g: &str| groups.iter().position(|x| x == g).unwrap_or(0);
    let endpoints = c
        .endpoint
        .iter()
        .map(|e| {
            let (rtype, rdata) = match e.addr {
                IpAddr::V4(a) => (1, a.octets().to_vec()),
                IpAddr::V6(a) => (28, a.octets().to_vec()),
            };
            Endpoint {
                addr: e.addr,
                weight: e.weight.max(1),
                group: group_of(&e.group),
                record: record(rtype, c.ttl, &rdata),
            }
        })
        .collect();
    let views: Vec<View> = c
        .view
        .iter()
        .map(|v| View {
            clients: v.clients.clone(),
            order: v.groups.iter().map(|g| group_of(g)).collect(),
        })
        .collect();
    let mut scope = [0u8; 2];
    for n in views.iter().flat_map(|v| &v.clients) {
        let f = AddrFamily::of(n.addr()) as usize;
        scope[f] = scope[f].max(n.prefix_len());
    }
    let fallback = match &c.when_all_down {
        WhenAllDown::Fallback(target) => Some(record(5, c.ttl, &lower_wire(target))),
        _ => None,
    };
    Service {
        name: c.name.clone(),
        key: lower_wire(&c.name),
        select: c.select,
        max_answers: usize::try_from(c.max_answers).unwrap_or(1).max(1),
        pick: usize::try_from(c.pick).unwrap_or(1).max(1),
        min_live: usize::try_from(c.min_live).unwrap_or(1).max(1),
        when_all_down: c.when_all_down.clone(),
        endpoints,
        groups,
        views,
        base,
        fallback,
        scope,
    }
}
