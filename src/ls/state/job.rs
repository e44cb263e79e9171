//! One client query being resolved: [`Job`], the client's bytes, ID,
//! question end, transport and route, as both drivers carry it.
use crate::dns::{HEADER_LEN, Transport};
use crate::logging::QueryLine;
use crate::ls::ecs::EcsEdit;
use crate::ls::loopmark::PlainAnswer;

/// One client query being resolved.
#[derive(Debug)]
pub struct Job {
    /// The client's message as received, or as `ecs` in `[ls]` edited it
    /// at the door ([`Job::ecs`]): what the backends and the cache see.
    pub raw: Vec<u8>,
    /// The client's ID, restored on the answer.
    pub client_id: u16,
    /// End of the question section in `raw`.
    pub question_end: usize,
    /// How the client came.
    pub transport: Transport,
    /// Hash of the lower-cased name (orders, sticky memory); 0 on a route
    /// whose order reads no name ([`crate::ls::order::reads_name`]).
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
    /// What the door changed of the client's ECS option in `raw`
    /// ([`crate::ls::ecs::edit_query`]); every answer is mended by it
    /// before the client gets it.
    pub ecs: Option<EcsEdit>,
    /// The client's address (past a `proxy_from` sender's PROXY header,
    /// the client it names) and the LS's address it reached, when known
    /// (set by the driver): what a PROXY header to a backend with `proxy`
    /// carries.
    pub client: (std::net::SocketAddr, Option<std::net::SocketAddr>),
}

impl Job {
    /// Whether the client's message ends at its question: no OPT (the LS
    /// may add one of its own for its loop mark, [`crate::ls::loopmark`]).
    pub fn ends_at_question(&self) -> bool {
        self.raw.len() == self.question_end
    }

    /// Whether the client sent an OPT: its message does not end at its
    /// question, and the OPT is not one the door added for ECS.
    pub fn client_has_opt(&self) -> bool {
        !self.ends_at_question() && self.ecs != Some(EcsEdit::AddedOpt)
    }

    /// What a backend's answer `resp` needs before it is kept
    /// ([`PlainAnswer::for_client`]); `resp` passed the upstream check
    /// against this job's question ([`crate::ls::upstream::accept`]). An OPT the door added for ECS stays
    /// in it until the cache has it (keyed and kept with the option); the
    /// reply takes it out then ([`crate::ls::ecs::mend_answer`]).
    pub fn plain_answer(&self, resp: &[u8]) -> PlainAnswer {
        let question_len = self.question_end.saturating_sub(HEADER_LEN);
        match PlainAnswer::for_client(self.client_has_opt(), resp, question_len) {
            PlainAnswer::WithoutOpt { .. } if self.ecs == Some(EcsEdit::AddedOpt) => {
                PlainAnswer::AsIs
            }
            plain => plain,
        }
    }

    /// The raw question section.
    pub fn question(&self) -> &[u8] {
        self.raw
            .get(HEADER_LEN..self.question_end)
            .unwrap_or_default()
    }
}
