//! The DNS over QUIC keys of the table servers, `quic` in `[[ts]]`: at
//! least one address, a certificate and key that can be read, parse and
//! belong together. Its addresses are checked against every other
//! listener's with them (`check_listeners`: UDP against UDP).

use super::super::{Config, load_certified_key};
use super::checker::ConfigChecker;

/// The rules of `quic` in each `[[ts]]`.
pub(super) fn check_quic(config: &Config, check: &mut ConfigChecker<'_>) {
    for (i, ts) in config.ts.iter().enumerate() {
        let Some(quic) = &ts.quic else { continue };
        let table = format!("ts.{i}.quic");
        check.require(!quic.listen.is_empty(), &format!("{table}.listen"), || {
            "needs at least one address (omit quic to turn DNS over QUIC off)".into()
        });
        if let Err(e) = load_certified_key(&quic.cert, &quic.key) {
            check.push(&[&format!("{table}.{}", e.key), &table], e.to_string());
        }
    }
}
