//! Why a key cannot be read, made or used.
use std::path::PathBuf;

/// A key that cannot be read, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnssecKeyError {
    /// A file or the folder could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a key file is not what BIND writes.
    #[error("{}:{line}: {what}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The key material is not a key of its algorithm (ring refuses it).
    #[error("{}: not a usable key: {what}", .path.display())]
    Rejected {
        /// The `.private` file.
        path: PathBuf,
        /// ring's reason.
        what: String,
    },
    /// A `.key` file without its `.private` file.
    #[error("{}: no private key beside it ({} is missing)", .path.display(), .private.display())]
    NoPrivate {
        /// The `.key` file.
        path: PathBuf,
        /// The missing file.
        private: PathBuf,
    },
    /// The zone has keys, but none of them signs now.
    #[error(
        "{}: no key of {origin} is active now (keys {tags}): set one's Activate \
         (dnssec-settime -A now), or remove the keys to have a new one made",
        .dir.display()
    )]
    NoneActive {
        /// The keys folder.
        dir: PathBuf,
        /// The zone.
        origin: String,
        /// The tags of the keys found, comma separated.
        tags: String,
    },
    /// A key of an algorithm the TS does not sign with, still published.
    #[error(
        "{}: algorithm {algorithm} is not one the TS signs with (13 ECDSAP256SHA256, \
         15 ED25519) and the key is still published (no Delete time, or one ahead): \
         the zone would hold a DNSKEY of an algorithm that signs nothing, bogus while \
         the parent's DS names it; finish the roll away from it with the signer that \
         made it, or set its Delete (dnssec-settime -D) once no DS names it",
        .path.display()
    )]
    Unsupported {
        /// The `.key` file.
        path: PathBuf,
        /// Its algorithm number.
        algorithm: u8,
    },
    /// ring could not make a key or a signature.
    #[error("key {tag}: {what} failed")]
    Crypto {
        /// The key's tag (0 while making a key).
        tag: u16,
        /// What was being done.
        what: &'static str,
    },
}
