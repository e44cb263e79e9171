//! What signs an RRset ([`RrsetSigner`], a key of `ts/dnssec/keys`), and why
//! a signing fails ([`SignError`]); the zone's signer and [`rrset_like`]
//! both use them.
//!
//! [`rrset_like`]: super::rrset_like
use crate::ts::error::{BuildError, ZoneError};

/// A key that signs RRsets.
pub trait RrsetSigner: Sync {
    /// Its key tag (RFC 4034 Appendix B).
    fn tag(&self) -> u16;
    /// Its algorithm number.
    fn algorithm(&self) -> u8;
    /// The signature field of an RRSIG over `data`.
    ///
    /// # Errors
    /// [`SignError::Crypto`] when the crypto library fails.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No active key for the DNSKEY RRset or for the data.
    #[error("no active key to sign with")]
    NoKey,
    /// The crypto library refused to sign.
    #[error("key {tag} could not sign")]
    Crypto {
        /// The key's tag.
        tag: u16,
    },
    /// A signing thread died.
    #[error("a signing thread failed")]
    Worker,
    /// The NSEC3 owner names (a 32-character hash label above the origin)
    /// would be longer than a name can be.
    #[error(
        "the origin is {0} bytes long (wire form): its NSEC3 owner names (a 32-character \
         hash label added) would pass 255; denial = \"nsec3\" needs an origin of at most \
         222 bytes (use denial = \"nsec\")"
    )]
    Nsec3OriginTooLong(usize),
    /// A record could not be encoded.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The signed zone could not be compiled.
    #[error(transparent)]
    Zone(#[from] ZoneError),
}
