//! Who may NOTIFY the LS, and with which TSIG key: each backend's address
//! with the key its NOTIFYs must be signed with (`[[ls.backend]]
//! notify_key`, or the `xfr_key` of the `[[ts]]` at that address). Read
//! from the config when a snapshot is built ([`super::state::LsState`]);
//! judged by [`super::invalidate`].
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::LsConfig;
use crate::dns::tsig::Key;

/// What the NOTIFYs of one backend must carry.
#[derive(Debug, Clone)]
enum SenderKey {
    /// Nothing: they may come unsigned.
    Open,
    /// A TSIG of this key.
    Key(Arc<Key>),
    /// A TSIG of a key that could not be read when the config was applied:
    /// none verifies, and unsigned ones are refused (failing closed).
    Unreadable,
}

/// Who may NOTIFY the LS: each backend's address (IPv4-mapped IPv6 as
/// IPv4), with the key its NOTIFYs must be signed with, if any.
#[derive(Debug, Clone, Default)]
pub struct NotifyPeers {
    peers: Vec<(IpAddr, SenderKey)>,
}

impl NotifyPeers {
    /// The backends of `c` with the keys `c.notify_tsig` names for them,
    /// read now (a `secret_file` too).
    pub fn from_config(c: &LsConfig) -> Self {
        let peers = c
            .backend
            .iter()
            .map(|b| {
                let key = match c.notify_tsig.iter().find(|(name, _)| *name == b.name) {
                    None => SenderKey::Open,
                    Some((_, kc)) => match kc.load() {
                        Ok(k) => SenderKey::Key(Arc::new(k)),
                        Err(err) => {
                            tracing::error!(backend = %b.name, key = %kc.name, %err, "the NOTIFY key of a backend cannot be read: its NOTIFYs are refused");
                            SenderKey::Unreadable
                        }
                    },
                };
                (b.addr.ip().to_canonical(), key)
            })
            .collect();
        NotifyPeers { peers }
    }

    /// Backends at these addresses, each with the key its NOTIFYs must be
    /// signed with (`None`: they may come unsigned).
    pub fn new(peers: impl IntoIterator<Item = (IpAddr, Option<Arc<Key>>)>) -> Self {
        let peers = peers
            .into_iter()
            .map(|(ip, key)| {
                (
                    ip.to_canonical(),
                    key.map_or(SenderKey::Open, SenderKey::Key),
                )
            })
            .collect();
        NotifyPeers { peers }
    }

    /// What a NOTIFY from `src` must carry: `None` when no backend is at
    /// `src`; else whether one may come unsigned, and the keys of the
    /// backends there (each name once).
    pub(super) fn at(&self, src: IpAddr) -> Option<(bool, Vec<Arc<Key>>)> {
        let src = src.to_canonical();
        let mut found = false;
        let mut open = false;
        let mut keys: Vec<Arc<Key>> = Vec::new();
        for (ip, key) in &self.peers {
            if *ip != src {
                continue;
            }
            found = true;
            match key {
                SenderKey::Open => open = true,
                SenderKey::Key(k) if !keys.iter().any(|have| have.name() == k.name()) => {
                    keys.push(Arc::clone(k));
                }
                SenderKey::Key(_) | SenderKey::Unreadable => {}
            }
        }
        found.then_some((open, keys))
    }
}
