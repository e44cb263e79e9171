//! The rules `[ls.tls]`, `[ls.https]` and `[ls.quic]` must follow, beside the rest of
//! `[ls]`'s: listen addresses, a DoH path a request can carry, connection
//! rates, and certificate and key files that can be read, parse, and belong
//! together.

use super::super::{LsConfig, load_certified_key};
use super::checker::ConfigChecker;
use super::limits::MAX_RATE_QPS;

/// The rules for `[ls.tls]` and `[ls.https]`: listen addresses, and certificate and key
/// files that can be read, parse, and belong together.
pub(super) fn check_encrypted(ls: &LsConfig, check: &mut ConfigChecker<'_>) {
    // The PROXY header is sent over UDP and TCP only.
    for (i, b) in ls.backend.iter().enumerate() {
        check.require(
            !b.proxy || !b.transport.encrypted(),
            &format!("ls.backend.{i}.proxy"),
            || {
                "a PROXY header is sent over udp (and TCP) only: not with transport tls or quic"
                    .into()
            },
        );
    }
    let mut pairs = Vec::new();
    if let Some(tls) = &ls.tls {
        check.require(!tls.listen.is_empty(), "ls.tls.listen", || {
            "needs at least one address (omit [ls.tls] to turn DNS over TLS off)".into()
        });
        pairs.push(("ls.tls", &tls.cert, &tls.key));
        let rate = tls.conn_rate_limit;
        check.at_most(rate, MAX_RATE_QPS, "ls.tls.conn_rate_limit");
    }
    if let Some(https) = &ls.https {
        check.require(!https.listen.is_empty(), "ls.https.listen", || {
            "needs at least one address (omit [ls.https] to turn DNS over HTTPS off)".into()
        });
        check.require(https.path.starts_with('/'), "ls.https.path", || {
            format!("must start with '/', got {:?}", https.path)
        });
        if let Some(c) = https.path.chars().find(|c| !is_path_char(*c)) {
            let msg = format!(
                "{c:?} cannot be in a URL path as a request sends it, so no request would match {:?}: use letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ / (or %XX)",
                https.path
            );
            check.push(&["ls.https.path"], msg);
        }
        let rate = https.conn_rate_limit;
        check.at_most(rate, MAX_RATE_QPS, "ls.https.conn_rate_limit");
        match (&https.cert, &https.key) {
            (Some(cert), Some(key)) => pairs.push(("ls.https", cert, key)),
            (None, None) if https.http3 => check.push(
                &["ls.https.http3", "ls.https"],
                "HTTP/3 runs over QUIC, which is always encrypted: give cert and key, or leave http3 off".into(),
            ),
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => check.push(
                &["ls.https.cert", "ls.https.key", "ls.https"],
                "cert and key go together: give both, or neither for plain HTTP/2 behind a TLS proxy".into(),
            ),
        }
    }
    if let Some(quic) = &ls.quic {
        check.require(!quic.listen.is_empty(), "ls.quic.listen", || {
            "needs at least one address (omit [ls.quic] to turn DNS over QUIC off)".into()
        });
        pairs.push(("ls.quic", &quic.cert, &quic.key));
    }
    for (table, cert, key) in pairs {
        if let Err(e) = load_certified_key(cert, key) {
            check.push(&[&format!("{table}.{}", e.key), table], e.to_string());
        }
    }
}

/// Whether `c` may stand in the path of a URL as a client sends it (RFC 3986
/// §3.3: unreserved, sub-delims, `:`, `@`, `/`, and `%` of a percent-encoding):
/// a DoH `path` with any other character (a space, `?`, `#`, non-ASCII) could
/// never equal a request's path.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}
