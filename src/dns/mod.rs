//! DNS wire-format helpers shared by the LS, the TS and the batch client, on
//! top of hickory-proto.
//!
//! Everything here treats its input as hostile: [`decode_query`] never panics,
//! and turns every problem into a [`Reject`], which [`Reject::response`] maps to
//! the one protocol outcome docs/CONFIG.md (the TS) asks for (drop, FORMERR, NOTIMP, ...).
//! [`ResponseWriter`] encodes answers straight from borrowed records, so a
//! server can answer from its tables without cloning them. [`nsid_for_client`]
//! is the LS's NSID step (RFC 5001) on every answer it passes on.
//!
//! # Map
//! - `limits.rs`: header length, payload and name limits, [`Transport`];
//! - `query.rs`: [`decode_query`], [`Reject`], the response header and OPT;
//! - `writer.rs`: [`ResponseWriter`] and [`Rr`];
//! - `header.rs`: raw messages read without decoding ([`WireHeader`],
//!   [`peek_plain_query`], the accept checks on upstream responses);
//! - `synth.rs`: answers made up (the LS's [`synthesized`] answer, TC=1,
//!   error answers);
//! - `nsid.rs`: NSID on raw messages;
//! - [`cookie`]: DNS Cookies (RFC 7873, RFC 9018 server cookies);
//! - `walk.rs`: the one walk over a raw message's sections (names skipped,
//!   records' places, the OPT and signatures found: [`walk_message`]);
//! - [`tsig`]: transaction signatures (RFC 8945): keys, verifying a
//!   request, signing message after message;
//! - `hostname.rs`: the hostname rules ([`parse_hostname`]) of PROJ tables
//!   and of `dnslb resolve`'s input;
//! - `identity.rs`: the RFC 4892 identity questions (`id.server.`,
//!   `hostname.bind.` CH TXT) and the answer the LS makes to them.
//!
//! Every item but [`tsig`]'s and [`cookie`]'s is re-exported here: callers say `dns::decode_query`.
pub mod cookie;
mod header;
mod hostname;
mod identity;
mod limits;
mod nsid;
mod padding;
pub mod proxy_v2;
mod query;
mod synth;
pub mod tsig;
mod walk;
mod writer;

#[cfg(test)]
pub(crate) mod fixtures;

pub use header::{
    WireHeader, answers_question, cut_to_truncated, peek_plain_query, rcode_mnemonic,
    rejects_query, same_question,
};
pub use hostname::parse_hostname;
pub use identity::{
    CLASS_CH, PROBE_OPTION, host_identity, identity_answer, is_identity_name, is_identity_question,
    probe_option, with_probe_ack,
};
pub use limits::{
    HEADER_LEN, NAME_MAX, TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX, UDP_PAYLOAD_PLAIN, Via,
};
pub use nsid::{
    LS_NSID_PREFIX, NSID_OPTION, NsidEdit, add_nsid, client_max_size, nsid_for_client,
    query_wants_nsid,
};
pub use padding::{PADDING_OPTION, RESPONSE_BLOCK, pad_answer, query_is_padded};
pub use query::{
    ClientQuery, ErrorAnswer, Reject, add_ede, decode_query, response_edns, response_metadata,
};
pub use synth::{
    EDE_NO_REACHABLE_AUTHORITY, EDE_NOT_SUPPORTED, error_for, error_with_ede, rcode_answer,
    servfail_for, synthesized, truncated_for,
};
pub use walk::{
    MessageWalk, RecordAt, Records, TYPE_OPT, TYPE_SIG, TYPE_TSIG, records, skip_name,
    skip_questions, u16_at, walk_answer, walk_message,
};
pub use writer::{ResponseWriter, Rr, rr_len};
