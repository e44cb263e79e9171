//! DNS Cookies (RFC 7873, RFC 9018 server cookies) on the answers the LS
//! makes itself: the door's (rule answers, blocks, refusals, identity) and
//! the cache's hits ([`stamp`]). A query whose COOKIE carries no server
//! cookie, or one of the LS's own (its `cookie_secret`), gets the LS's:
//! echoed, or fresh. One whose server cookie the LS did not make gets its
//! COOKIE back as sent: that is most often the backend's, which the client
//! learnt on a forwarded answer and which the LS cannot check (the backend
//! made it for the LS's address, with its own secret); the client's state
//! is left as it was, and the LS never answers BADCOOKIE. A malformed COOKIE
//! gets none (a forwarded one is the backend's to judge).
//!
//! Where the LS forwards, the query's COOKIE goes to the backend as sent
//! and the backend's answer comes back with the backend's COOKIE, as the
//! backend made it; but a valid server cookie of the LS's own is cut to
//! its client cookie first ([`for_backend`]): the backend never made it.
//! The backends behind one LS address must share their secret (a dnslb TS
//! answers cookies only with `cookie_secret` set), or a cookie one made is
//! BADCOOKIE at the next.
//!
//! A client whose COOKIE carries a valid LS server cookie has proven its
//! address ([`proven`]): the `truncate` action of a dynamic block or a rule
//! lets its UDP query through, as over TCP.
use std::net::IpAddr;

use crate::dns::cookie::{self, CookieVerdict, ServerSecrets};
use crate::dns::{self, Transport};

/// The current time as RFC 9018's timestamps count it (seconds, modulo 2^32).
fn now() -> u32 {
    // Truncation is the point: the timestamp field wraps in 2106.
    #[allow(clippy::cast_possible_truncation)]
    let now = crate::clock::unix_now() as u32;
    now
}

/// Puts the COOKIE of the LS's own answer `out` to `query` (from `ip`,
/// over `transport`) into its OPT, as the module header says; nothing when
/// the query has none, or the answer no OPT or no room.
pub(crate) fn stamp(
    secrets: &ServerSecrets,
    (query, ip, transport): (&[u8], IpAddr, Transport),
    out: &mut Vec<u8>,
) {
    let Some(sent) = cookie::find(query) else {
        return;
    };
    let Ok(checked) = secrets.check(sent, ip, now()) else {
        return;
    };
    let max = dns::client_max_size(query, transport);
    match checked.verdict {
        CookieVerdict::Bad => cookie::set_option(out, sent, max),
        CookieVerdict::ClientOnly | CookieVerdict::Valid => {
            let reply = checked.reply(secrets, ip, now());
            cookie::set_option(out, &reply, max)
        }
    };
}

/// Whether the COOKIE payload `sent` (of a query from `ip`) carries a
/// valid LS server cookie.
pub(crate) fn proven(secrets: &ServerSecrets, sent: Option<&[u8]>, ip: IpAddr) -> bool {
    let Some(sent) = sent else {
        return false;
    };
    sent.len() > cookie::CLIENT_COOKIE_LEN
        && secrets.check(sent, ip, now()).is_ok_and(|c| c.valid())
}

/// The query `query` (from `ip`) as the LS forwards it: a COOKIE carrying a
/// valid server cookie of the LS's own is cut to its client cookie (the
/// backend never made it: it answers with a fresh cookie of its own, not
/// BADCOOKIE); any other COOKIE is left as sent.
pub(crate) fn for_backend(secrets: &ServerSecrets, query: &mut Vec<u8>, ip: IpAddr) {
    let client = match cookie::find(query) {
        Some(sent) if proven(secrets, Some(sent), ip) => sent.get(..cookie::CLIENT_COOKIE_LEN),
        _ => None,
    };
    let Some(client) = client.map(<[u8]>::to_vec) else {
        return;
    };
    cookie::set_option(query, &client, usize::MAX);
}
