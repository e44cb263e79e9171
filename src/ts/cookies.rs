//! DNS Cookies on the TS's answers (RFC 7873, RFC 9018 server cookies;
//! the codec is [`crate::dns::cookie`]). A request's COOKIE is read and
//! checked once, before it is answered ([`check`]): its verdict says whether
//! the client's address is proven ([`server_cookie_valid`], which response
//! rate limiting reads). A malformed COOKIE is FORMERR; a bad server cookie
//! over UDP is BADCOOKIE with a fresh cookie, no records ([`refusal`]: as
//! BIND answers, so that a client whose cookie went stale, or whose
//! sibling's secret is not shared, learns a good one in one round trip);
//! over TCP, where the address is proven, it is answered as a first contact.
//! Every other answer to a query with a COOKIE carries the client cookie and
//! a server cookie, echoed or fresh ([`stamp`]), the room for it taken from
//! the answer's size before it is built ([`room`]). A zone transfer's stream
//! carries none (as Knot's and NSD's do not). A query for a cookie alone
//! (no question, RFC 7873 §5.4) is answered NOERROR with one ([`cookie_only`]).
use hickory_proto::op::ResponseCode;

use super::TableServer;
use super::metrics::RequestOutcome;
use crate::dns::cookie::{self, CookieCheck, CookieVerdict, MalformedCookie, REPLY_OPTION_LEN};
use crate::dns::{self, Transport};
use crate::server::{Reply, Request};

/// The current time as RFC 9018's timestamps count it: seconds since the
/// epoch, modulo 2^32 (compared with serial arithmetic).
pub(super) fn cookie_now() -> u32 {
    // Truncation is the point: the timestamp field wraps in 2106.
    #[allow(clippy::cast_possible_truncation)]
    let now = crate::clock::unix_now() as u32;
    now
}

/// The COOKIE of `req` checked with `ts`'s secrets at `now`: `None` without
/// one.
///
/// # Errors
/// A COOKIE of a length RFC 7873 §5.2.2 calls malformed.
pub(super) fn check(
    ts: &TableServer,
    req: &Request<'_>,
    now: u32,
) -> Result<Option<CookieCheck>, MalformedCookie> {
    let Some(option) = cookie::find(req.raw).filter(|_| ts.settings.cookies_on) else {
        return Ok(None);
    };
    ts.settings
        .cookies
        .check(option, req.src.ip(), now)
        .map(Some)
}

/// Whether the request whose COOKIE was read as `cookie` carries a valid
/// server cookie: its sender's address is proven (RRL lets it through).
pub fn server_cookie_valid(cookie: Option<&CookieCheck>) -> bool {
    cookie.is_some_and(CookieCheck::valid)
}

/// The answer to a query for a server cookie alone (RFC 7873 §5.4: no
/// question, a COOKIE), with the TS's cookie: NOERROR, or BADCOOKIE over
/// UDP for a bad server cookie; `None` for any other request (and for every
/// request when cookies are off: such a query is then FORMERR, as before).
pub(super) fn cookie_only(
    ts: &TableServer,
    req: &Request<'_>,
    (cookie, now): (Result<Option<CookieCheck>, MalformedCookie>, u32),
) -> Option<(Reply, RequestOutcome)> {
    let Ok(Some(checked)) = cookie else {
        return None;
    };
    let rcode = refusal(req, cookie).unwrap_or(ResponseCode::NoError);
    let msg = cookie::cookie_only_answer(req.raw, u16::from(rcode))?;
    let reply = stamp(ts, req, (Some(&checked), now), Reply::One(msg));
    Some((reply, RequestOutcome::Answered(rcode)))
}

/// What the answer's COOKIE option takes of the client's size limit.
pub(super) fn room(cookie: Option<&CookieCheck>) -> usize {
    cookie.map_or(0, |_| REPLY_OPTION_LEN)
}

/// The rcode that ends `req` for its COOKIE before it is answered, if any:
/// FORMERR for a malformed one, BADCOOKIE for a bad server cookie over UDP.
pub(super) fn refusal(
    req: &Request<'_>,
    cookie: Result<Option<CookieCheck>, MalformedCookie>,
) -> Option<ResponseCode> {
    match cookie {
        Err(_) => Some(ResponseCode::FormErr),
        Ok(Some(c)) if c.verdict == CookieVerdict::Bad && req.transport == Transport::Udp => {
            Some(ResponseCode::BADCOOKIE)
        }
        Ok(_) => None,
    }
}

/// `reply` (one message, before it is signed) with the answer's COOKIE in
/// its OPT, when the query had one: the server cookie echoed or fresh.
pub(super) fn stamp(
    ts: &TableServer,
    req: &Request<'_>,
    (cookie, now): (Option<&CookieCheck>, u32),
    reply: Reply,
) -> Reply {
    match (cookie, reply) {
        (Some(c), Reply::One(mut msg)) => {
            let payload = c.reply(&ts.settings.cookies, req.src.ip(), now);
            let max = dns::client_max_size(req.raw, req.transport);
            cookie::set_option(&mut msg, &payload, max);
            Reply::One(msg)
        }
        (_, reply) => reply,
    }
}
