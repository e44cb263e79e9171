//! The `file:line` error of a zone source ([`ZoneError`]), shared by both
//! formats (PROJ tables and RFC 1035 master files), the load of a TS's
//! files and the zone compiler, whose reasons are [`BuildError`]s.
use std::path::{Path, PathBuf};

use hickory_proto::rr::RecordType;

/// A problem in a zone source, always naming the file and (where there is one) the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    /// A bad line: `file:line: what is wrong`.
    #[error("{}:{line}: {msg}", file.display())]
    Line {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in a few words.
        msg: String,
    },
    /// A record the zone cannot hold, or a zone that cannot be compiled
    /// (`ts::zone::ZoneBuilder`): `file:line: what is wrong`.
    #[error("{}:{line}: {reason}", file.display())]
    Build {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: BuildError,
    },
    /// The files changed every time they were read (each read of them was
    /// compared with their bytes before and after): a writer was rewriting
    /// them in place.
    #[error(
        "{}: changed while being read, {tries} times in a row: replace a zone file by writing a new file and renaming it over the old",
        file.display()
    )]
    Unsettled {
        /// The zone file found changed by the last read (the first of
        /// them, when several were).
        file: PathBuf,
        /// Reads tried.
        tries: u32,
    },
    /// Files that cannot make one zone together: the file and why.
    #[error("{}: {msg}", file.display())]
    Shared {
        /// The file that joins the zone.
        file: PathBuf,
        /// Why, naming the other file.
        msg: String,
    },
    /// The file could not be read at all.
    #[error("{}: cannot read: {msg}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error text.
        msg: String,
    },
    /// A zone the TS signs could not be signed: the zone and why (its
    /// keys' files, or the signer).
    #[error("{0}")]
    Signing(String),
    /// The transfer key (`xfr_key`) could not be read or used.
    #[error("{0}")]
    Key(String),
}

impl ZoneError {
    /// A zone the TS signs could not be signed (its keys, or the signer).
    pub fn signing(err: impl std::error::Error) -> Self {
        ZoneError::Signing(err.to_string())
    }

    /// A `file:line` error.
    pub fn line(file: &Path, line: usize, msg: impl Into<String>) -> Self {
        ZoneError::Line {
            file: file.to_path_buf(),
            line,
            msg: cut(msg.into()),
        }
    }

    /// A `file:line` error found while compiling a zone.
    pub fn build(file: &Path, line: usize, reason: BuildError) -> Self {
        ZoneError::Build {
            file: file.to_path_buf(),
            line,
            reason,
        }
    }
}

/// What is wrong with one record, or with the zone at a record; shown after
/// its `file:line` (see [`ZoneError::Build`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A label over 63 bytes (RFC 1035 §2.3.4).
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    /// A name over 255 bytes in wire form (RFC 1035 §2.3.4).
    #[error("name longer than 255 bytes")]
    NameOver255,
    /// A name too long to store.
    #[error("name too long")]
    NameTooLong,
    /// More names than the index can number.
    #[error("too many names")]
    TooManyNames,
    /// RDATA that hickory cannot encode.
    #[error("cannot encode the {rtype} record: {reason}")]
    Encode {
        /// The record's type.
        rtype: RecordType,
        /// The encoder's error.
        reason: String,
    },
    /// RDATA over 65,535 bytes.
    #[error("record data over 65,535 bytes")]
    RdataOver64K,
    /// A record owned by a name outside the zone.
    #[error("{name} is outside the zone {origin}")]
    OutsideZone {
        /// The record's owner.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// An SOA away from the zone's apex.
    #[error("SOA at {name} is not at the zone apex {origin}")]
    SoaOffApex {
        /// The SOA's owner.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// A second SOA.
    #[error("a second SOA")]
    SecondSoa,
    /// A CNAME beside other data, or a second CNAME.
    #[error("{name} has a CNAME and other data (RFC 1034 §3.6.2)")]
    CnameAndOther {
        /// The owner, as written (`?` if unreadable).
        name: String,
    },
    /// A second CNAME or DNAME at a name (RFC 1034 §3.6.2, RFC 6672 §2.4).
    #[error("{name} has more than one {rtype} (a name holds at most one)")]
    SecondSingleton {
        /// The owner, as written (`?` if unreadable).
        name: String,
        /// CNAME or DNAME.
        rtype: RecordType,
    },
    /// Data below a DNAME (RFC 6672 §2.3).
    #[error("data below the DNAME at {name} (RFC 6672 §2.3: a DNAME owner has no names below it)")]
    BelowDname {
        /// The DNAME's owner.
        name: String,
    },
    /// A record no DNS message can carry.
    #[error(
        "a record of {size} bytes with a message's header, over 65,535: no answer or \
         transfer could carry it"
    )]
    RecordOverMessage {
        /// The record's size with a message's 12-byte header.
        size: usize,
    },
    /// More than 4 GiB of RDATA read.
    #[error("zone over 4 GiB")]
    RdataOver4G,
    /// More than 4 GiB of compiled records.
    #[error("zone over 4 GiB of records")]
    RecordsOver4G,
    /// More RRsets at one name than an entry can count.
    #[error("too many types")]
    TooManyTypes,
    /// More records in one RRset than it can count, or over 4 GiB.
    #[error("RRset too large")]
    RrsetTooLarge,
    /// A name's RRsets over 4 GiB.
    #[error("zone too large")]
    ZoneTooLarge,
}

/// The longest message a [`ZoneError::Line`] keeps whole.
const MSG_MAX: usize = 600;

/// `msg`, or its start and end with the middle cut out when it is over
/// [`MSG_MAX`] bytes: a message quotes the token at fault, which may be a
/// 100 MB word of a broken file (BIND cuts its lines too).
fn cut(msg: String) -> String {
    if msg.len() <= MSG_MAX {
        return msg;
    }
    let floor = |mut i: usize| {
        while !msg.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head = floor(MSG_MAX / 2);
    let tail = floor(msg.len() - MSG_MAX / 4);
    format!(
        "{}…[{} bytes cut]…{}",
        &msg[..head],
        tail - head,
        &msg[tail..]
    )
}
