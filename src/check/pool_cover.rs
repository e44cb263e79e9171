//! A rule of `dnslb check` that needs the config and the tables together:
//! a `[[ls.pool]]` that leaves out a table server holding names under the
//! pool's zones. Those names are asked of the pool's backends only, which
//! answer them NXDOMAIN (or not at all): a made-up "no such name" for names
//! that exist. A warning, not a problem: the operator may mean it (a table
//! being retired). Pure: the tables' names are given.
use std::net::SocketAddr;

use hickory_proto::rr::Name;

use crate::config::LsConfig;

/// One table server as the rule sees it.
#[derive(Debug)]
pub struct Table {
    /// Its `[[ts]]` name.
    pub name: String,
    /// Where it listens (each address of its `listen`).
    pub listen: Vec<SocketAddr>,
    /// Every owner name it holds.
    pub names: Vec<Name>,
}

/// The `[[ls.backend]]` of `ls` that sends to a TS listening on `listen`.
fn backend_for(ls: &LsConfig, listen: SocketAddr) -> Option<&str> {
    ls.backend
        .iter()
        .find(|b| {
            b.addr == listen
                || (b.addr.port() == listen.port()
                    && listen.ip().is_unspecified()
                    && b.addr.is_ipv4() == listen.is_ipv4())
        })
        .map(|b| b.name.as_str())
}

/// The pool (its index) of `name`: the one whose zone is the longest suffix.
fn pool_of(ls: &LsConfig, name: &Name) -> Option<usize> {
    ls.pool
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.zones.iter().map(move |z| (i, z)))
        .filter(|(_, z)| z.zone_of(name))
        .max_by_key(|(_, z)| z.num_labels())
        .map(|(i, _)| i)
}

/// For each pool of `ls` that leaves out a table of `tables` (one of `ls`'s
/// backends) holding a name the pool routes: the pool's index and the
/// warning, one per pool and table, naming the first such name.
pub fn excluded_holders(ls: &LsConfig, tables: &[Table]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, pool) in ls.pool.iter().enumerate() {
        for t in tables {
            let Some(backend) = t.listen.iter().find_map(|&l| backend_for(ls, l)) else {
                continue;
            };
            if pool.backends.iter().any(|b| b == backend) {
                continue;
            }
            let Some(held) = t.names.iter().find(|n| pool_of(ls, n) == Some(i)) else {
                continue;
            };
            out.push((
                i,
                format!(
                    "warning: pool {}: table server {} (backend {backend}, not in the pool) \
                     holds {held}, a name under the pool's zones: it is asked of {} only, \
                     which cannot answer it (NXDOMAIN); add {backend} to the pool, or move \
                     such names to a table server in it",
                    pool.name,
                    t.name,
                    pool.backends.join(", ")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, PoolConfig, parse_name};

    fn ls(pools: &[(&str, &[&str], &[&str])]) -> LsConfig {
        let backend = |name: &str, port: u16| BackendConfig {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1,
            notify_key: None,
            transport: Default::default(),
            tls_name: None,
            ca: None,
            proxy: false,
        };
        LsConfig {
            backend: vec![backend("ts1", 5301), backend("ts2", 5302)],
            pool: pools
                .iter()
                .map(|(name, backends, zones)| PoolConfig {
                    name: (*name).into(),
                    backends: backends.iter().map(|b| (*b).to_owned()).collect(),
                    zones: zones.iter().map(|z| parse_name(z).unwrap()).collect(),
                    ..PoolConfig::default()
                })
                .collect(),
            ..LsConfig::default()
        }
    }

    fn table(name: &str, port: u16, names: &[&str]) -> Table {
        Table {
            name: name.into(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            names: names.iter().map(|n| parse_name(n).unwrap()).collect(),
        }
    }

    /// The shipped tables: ts1 holds mail.example.org, ts2 www.example.org.
    #[test]
    fn a_pool_leaving_out_a_table_with_names_under_its_zone_is_warned() {
        let tables = [
            table("ts1", 5301, &["www.example.com", "Mail.Example.ORG"]),
            table("ts2", 5302, &["www.example.org", "store.example.com"]),
        ];
        let w = excluded_holders(&ls(&[("org", &["ts2"], &["example.org"])]), &tables);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, 0);
        assert!(w[0].1.contains("pool org: table server ts1"), "{}", w[0].1);
        assert!(
            w[0].1.to_lowercase().contains("mail.example.org"),
            "{}",
            w[0].1
        );
        // Both tables in the pool, or a zone only one table holds: nothing.
        let both = ls(&[("org", &["ts1", "ts2"], &["example.org"])]);
        assert!(excluded_holders(&both, &tables).is_empty());
        let sub = ls(&[("www", &["ts2"], &["www.example.org"])]);
        assert!(excluded_holders(&sub, &tables).is_empty());
    }

    /// A name a more specific zone of another pool takes is that pool's.
    #[test]
    fn the_longest_zone_decides_whose_name_it_is() {
        let tables = [
            table("ts1", 5301, &["a.sub.example.org"]),
            table("ts2", 5302, &["www.example.org"]),
        ];
        let c = ls(&[
            ("org", &["ts2"], &["example.org"]),
            ("sub", &["ts1"], &["sub.example.org"]),
        ]);
        assert!(excluded_holders(&c, &tables).is_empty());
        // A table that is no backend of the LS is not its concern.
        let stray = [table("ts9", 5309, &["x.example.org"])];
        assert!(excluded_holders(&c, &stray).is_empty());
    }
}
