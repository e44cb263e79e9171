//! The answers of the TS's zone control, as JSON (`docs/CONFIG.md` (the TS)
//! "Zone control"): [`ZoneEntry`] a line of `dnslb zone list`,
//! [`ZoneStatus`] what `dnslb zone status` shows of one zone, and
//! [`ZoneAction`] what a reload, notify, retransfer or refresh did. Each
//! field the TS does not know is left out (`None`), never guessed.
use serde::{Deserialize, Serialize};

/// Where a zone comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneSource {
    /// Its zone files (`zones` in its `[[ts]]`).
    File,
    /// Transferred from a primary (`{ name, primary }` in `zones`, or the
    /// catalog zone of `catalog_from`).
    Secondary,
    /// A member of the catalog it consumes (`catalog_from`), transferred
    /// from that catalog's primary.
    CatalogMember,
    /// The catalog zone it publishes (`catalog`), made of its zones.
    Catalog,
}

impl ZoneSource {
    /// The word `dnslb zone list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneSource::File => "file",
            ZoneSource::Secondary => "secondary",
            ZoneSource::CatalogMember => "catalog-member",
            ZoneSource::Catalog => "catalog",
        }
    }
}

/// One zone served, as `dnslb zone list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneEntry {
    /// The zone, fully qualified.
    pub name: String,
    /// Its SOA serial.
    pub serial: u32,
    /// Where it comes from.
    pub source: ZoneSource,
    /// Expired (a secondary zone past its SOA EXPIRE): answered SERVFAIL.
    pub expired: bool,
    /// Served (false: a secondary zone with no copy yet, waiting for its
    /// first transfer; REFUSED meanwhile, serial 0).
    pub served: bool,
}

/// An event and its outcome: when, whether it went well, what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneEvent {
    /// When, seconds since the epoch.
    pub at_unix: u64,
    /// Whether it went well.
    pub ok: bool,
    /// What it did, or why it failed.
    pub detail: String,
    /// The serial served after it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
}

/// The NOTIFYs of a zone to one target since the TS started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTally {
    /// The secondary told.
    pub target: String,
    /// NOTIFYs that ended (acknowledged, rejected or unanswered after
    /// every try).
    pub sent: u64,
    /// Of those, acknowledged.
    pub acked: u64,
    /// The last one's outcome ("acknowledged", "rejected (REFUSED)", "no reply").
    pub last: String,
    /// When it ended, seconds since the epoch.
    pub last_unix: u64,
}

/// What `dnslb zone status NAME` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStatus {
    /// The zone, fully qualified.
    pub name: String,
    /// Its SOA serial.
    pub serial: u32,
    /// Where it comes from.
    pub source: ZoneSource,
    /// Served (false: a secondary zone with no copy yet; serial 0).
    pub served: bool,
    /// Expired: answered SERVFAIL.
    pub expired: bool,
    /// RRsets served, its SOA included.
    pub rrsets: usize,
    /// Its zone files (a file zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Its primary (a secondary zone or catalog member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The catalog it is a member of (a catalog member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// When the version served was loaded from its files (a file zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_unix: Option<u64>,
    /// The last reload of the zone files since start, and its outcome (a
    /// file zone; a reload is of all its files or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ZoneEvent>,
    /// The last attempt to ask the primary (a secondary zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<ZoneEvent>,
    /// The last transfer that brought a version (a secondary zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transfer: Option<ZoneEvent>,
    /// When the primary is asked next (a secondary zone; absent while
    /// being asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_unix: Option<u64>,
    /// When it expires without contact with its primary (a secondary zone
    /// with timers known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_unix: Option<u64>,
    /// The NOTIFYs sent to its `notify` targets since start.
    #[serde(default)]
    pub notify: Vec<NotifyTally>,
    /// Signed by this TS (`dnssec` in its `[[ts]]`).
    pub signed_here: bool,
    /// Signed in its files (a DNSKEY with signatures at its apex).
    pub presigned: bool,
    /// When this TS signs it next (its signatures' refresh point, or its
    /// keys' next event if sooner), seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec_next_unix: Option<u64>,
    /// Its keys' next event (published, active, retired...), seconds since
    /// the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_event_unix: Option<u64>,
}

/// What a reload, notify, retransfer or refresh of one zone did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneAction {
    /// The zone.
    pub zone: String,
    /// reload, notify, retransfer or refresh.
    pub action: String,
    /// Done (false: asked, its outcome not seen within the wait).
    pub done: bool,
    /// What it did, in words.
    pub detail: String,
    /// The serial before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_before: Option<u32>,
    /// The serial after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_after: Option<u32>,
}
