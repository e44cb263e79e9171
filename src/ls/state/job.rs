//! One client query being resolved: [`Job`], the client's bytes, ID,
//! question end, transport and route, as both drivers carry it.
use crate::dns::{HEADER_LEN, Transport};
use crate::logging::QueryLine;

/// One client query being resolved.
#[derive(Debug)]
pub struct Job {
    /// The client's message as received.
    pub raw: Vec<u8>,
    /// The client's ID, restored on the answer.
    pub client_id: u16,
    /// End of the question section in `raw`.
    pub question_end: usize,
    /// How the client came.
    pub transport: Transport,
    /// Hash of the lower-cased name (orders, sticky memory).
    pub name_hash: u64,
    /// The pool it was routed to (an index of [`LsState::pools`](super::LsState::pools)); `None`:
    /// under no pool's zone, it goes to every backend.
    pub route: Option<usize>,
    /// Its line for the query log, when that is on (debug).
    pub log: Option<QueryLine>,
    /// Its route's cache's flush generation when it was admitted
    /// ([`crate::ls::cache::PacketCache::generation`]): its answer is not kept
    /// if a flush began since.
    pub cache_generation: u64,
}

impl Job {
    /// Whether the client's message ends at its question: no OPT (the LS
    /// may add one of its own for its loop mark, [`crate::ls::loopmark`]).
    pub fn ends_at_question(&self) -> bool {
        self.raw.len() == self.question_end
    }

    /// The raw question section.
    pub fn question(&self) -> &[u8] {
        self.raw
            .get(HEADER_LEN..self.question_end)
            .unwrap_or_default()
    }
}
