//! What a key file says of a key besides its material: the DNSKEY flags,
//! the algorithm number, and the timing metadata (`Publish`, `Activate`,
//! `Inactive`, `Delete`) with what it means at a given time.
use crate::config::DnssecAlgorithm;

/// DNSKEY flags of a zone key (RFC 4034 §2.1.1).
pub(super) const ZONE_FLAG: u16 = 256;
/// The Secure Entry Point flag: a KSK, or a CSK.
pub(super) const SEP_FLAG: u16 = 1;
/// The REVOKE flag (RFC 5011 §7).
pub(super) const REVOKE_FLAG: u16 = 0x0080;
/// How long a new ZSK is published before it signs data alone: resolvers
/// hold the DNSKEY RRset for its TTL, and one that has not seen the new
/// key would call its signatures bogus; meanwhile the SEP keys sign data
/// too. A day covers the DNSKEY TTLs in use (RFC 7583 §3.3's Dprp + TTLkey).
pub const SETTLE: u32 = 86_400;
/// The DNSSEC algorithm number (RFC 8624) of `algorithm`.
pub fn algorithm_number(algorithm: DnssecAlgorithm) -> u8 {
    match algorithm {
        DnssecAlgorithm::EcdsaP256Sha256 => 13,
        DnssecAlgorithm::Ed25519 => 15,
    }
}

/// When a key enters and leaves the DNSKEY RRset and signs: seconds since the
/// epoch, `None` when the file does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Timing {
    pub(super) publish: Option<u32>,
    pub(super) activate: Option<u32>,
    pub(super) inactive: Option<u32>,
    pub(super) delete: Option<u32>,
}

impl Timing {
    /// Whether a key has been published for [`SETTLE`] at `now` (a key with
    /// no Publish time was published before anyone can tell).
    pub(super) fn settled(&self, now: u32) -> bool {
        self.publish.is_none_or(|t| t.saturating_add(SETTLE) <= now)
    }

    /// The first time after `now` at which what this key does changes
    /// (for a ZSK, `zsk`, also the end of its [`SETTLE`]).
    pub(super) fn next_event(&self, now: u32, zsk: bool) -> Option<u32> {
        let settle = self
            .publish
            .filter(|_| zsk)
            .map(|t| t.saturating_add(SETTLE));
        [
            self.publish,
            self.activate,
            self.inactive,
            self.delete,
            settle,
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now)
        .min()
    }

    /// A standby key: a Publish time and no Activate (`dnssec-keygen -A
    /// none`), kept to sign only once an operator activates it.
    pub(super) fn standby(&self) -> bool {
        self.publish.is_some() && self.activate.is_none()
    }

    /// In the DNSKEY RRset at `now`: published and not yet deleted.
    pub(super) fn published(&self, now: u32) -> bool {
        self.publish.is_none_or(|t| t <= now) && self.delete.is_none_or(|t| t > now)
    }

    /// Signing at `now`: published, activated and not yet retired. A key
    /// with a Publish time but no Activate is a standby key (`dnssec-keygen
    /// -A none`): published, never signing, as BIND treats it; a key with
    /// neither time signs from the start.
    pub(super) fn active(&self, now: u32) -> bool {
        let activated = match (self.publish, self.activate) {
            (_, Some(t)) => t <= now,
            (Some(_), None) => false,
            (None, None) => true,
        };
        self.published(now) && activated && self.inactive.is_none_or(|t| t > now)
    }
}
