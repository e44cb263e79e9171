//! What a zone the TS signed remembers of its signing ([`Signature`]), and
//! when a signature is due to be made anew ([`refresh_point`]). Below the
//! zone and its signer: `Zone` holds one, `sign/` makes it.
use crate::config::Denial;

/// When a signature valid from `inception` to `expiration` is due to be
/// made anew: a tenth of its life before it expires (docs/CONFIG.md (the TS)).
pub(crate) fn refresh_point(inception: u32, expiration: u32) -> u32 {
    expiration.saturating_sub(expiration.saturating_sub(inception) / 10)
}

/// What a zone signed by the TS remembers of its signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// SHA-256 of the unsigned data (records, SOA but its serial).
    pub data: [u8; 32],
    /// The keys it was signed with ([`Keys::id`](super::Keys::id)).
    pub tags: Vec<u16>,
    /// When the validity of its oldest signature (the first to expire)
    /// starts, seconds since the epoch.
    pub inception: u32,
    /// When its oldest signature expires, seconds since the epoch: every
    /// other is valid at least as long.
    pub expiration: u32,
    /// When the validity of its newest signature starts: a clock behind it
    /// (stepped back since the signing) makes that signature not yet valid
    /// to validators.
    pub latest_inception: u32,
    /// The denial of existence it carries.
    pub denial: Denial,
    /// When its keys next change what they do ([`Keys::next_event`](super::Keys::next_event)).
    pub key_event: Option<u32>,
}

impl Signature {
    /// When the zone is signed anew: a tenth of its oldest signature's
    /// life before it expires (docs/CONFIG.md (the TS)), or at its keys' next event if
    /// sooner.
    pub fn refresh_at(&self) -> u32 {
        let expiry = refresh_point(self.inception, self.expiration);
        self.key_event.map_or(expiry, |k| k.min(expiry))
    }

    /// Whether the zone must be signed again at `now`, its keys doing what
    /// `keys_id` says ([`Keys::id`](super::Keys::id), read at `now`): the keys changed what
    /// they do (a key added, removed, activated, retired, settled), its
    /// oldest signature reached its refresh point, or the clock is behind
    /// a signature's inception (stepped back: that signature is not valid
    /// yet). A key event alone, the keys doing the same, does not.
    pub fn stale(&self, keys_id: &[u16], now: u32) -> bool {
        self.tags != keys_id
            || now >= refresh_point(self.inception, self.expiration)
            || now < self.latest_inception
    }
}
