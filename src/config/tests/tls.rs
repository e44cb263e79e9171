//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of `[ls.tls]` and `[ls.https]`: off when omitted, the defaults, paths
//! resolved against the config's folder, and the certificate and key checked when
//! the file is read, each problem at `file:line` naming the file at fault.

use super::*;

/// The fixtures: a certificate, its key, and a key that is not its.
fn fixture(name: &str) -> String {
    format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `BASE` with `table` after the `[ls]` keys.
fn with_table(table: &str) -> String {
    BASE.replace("[[ls.backend]]", &format!("{table}\n\n[[ls.backend]]"))
}

/// A `[ls.tls]` table naming `cert` and `key`.
fn dot(cert: &str, key: &str) -> String {
    with_table(&format!("[ls.tls]\ncert = \"{cert}\"\nkey = \"{key}\""))
}

#[test]
fn encrypted_listeners_are_off_unless_their_table_is_written() {
    let ls = parse(BASE).unwrap().ls.unwrap();
    assert_eq!((ls.tls, ls.https), (None, None));
}

#[test]
fn a_good_pair_is_accepted_with_the_default_address() {
    let config = parse(&dot(&fixture("ls.pem"), &fixture("ls.key"))).unwrap();
    let tls = config.ls.unwrap().tls.unwrap();
    assert_eq!(tls.listen, vec![addr("127.0.0.1:8853")]);
    assert_eq!(tls.cert, PathBuf::from(fixture("ls.pem")));
    assert!(load_certified_key(&tls.cert, &tls.key).is_ok());
}

#[test]
fn relative_certificate_paths_resolve_against_the_config_folder() {
    let text = dot("certs/a.pem", "certs/a.key");
    let config = Config::parse(&text, Path::new("/etc/dnslb/config.toml")).unwrap();
    let tls = config.ls.unwrap().tls.unwrap();
    assert_eq!(tls.cert, PathBuf::from("/etc/dnslb/certs/a.pem"));
    assert_eq!(tls.key, PathBuf::from("/etc/dnslb/certs/a.key"));
    let text = with_table("[ls.https]\ncert = \"c.pem\"\nkey = \"c.key\"");
    let config = Config::parse(&text, Path::new("/etc/dnslb/config.toml")).unwrap();
    let https = config.ls.unwrap().https.unwrap();
    assert_eq!(https.cert, Some(PathBuf::from("/etc/dnslb/c.pem")));
    assert_eq!(https.path, "/dns-query");
    assert_eq!(https.listen, vec![addr("127.0.0.1:8443")]);
}

#[test]
fn cert_and_key_are_required() {
    let e = err(&with_table("[ls.tls]\ncert = \"a.pem\""));
    assert!(e.contains("key"), "{e}");
}

#[test]
fn a_missing_certificate_is_named_at_its_line() {
    let text = dot("/nonexistent/ls.pem", &fixture("ls.key"));
    let line = text.lines().position(|l| l.starts_with("cert =")).unwrap() + 1;
    let e = err(&text);
    assert!(
        e.starts_with(&format!(
            "config.toml:{line}: ls.tls.cert: /nonexistent/ls.pem: cannot read"
        )),
        "{e}"
    );
}

#[test]
fn a_file_without_a_certificate_is_refused() {
    // A key where the certificate should be.
    let e = err(&dot(&fixture("ls.key"), &fixture("ls.key")));
    assert!(
        e.contains("ls.tls.cert:") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = err(&dot(&fixture("ls.pem"), &fixture("ls.pem")));
    assert!(
        e.contains("ls.tls.key:") && e.contains("no PEM private key"),
        "{e}"
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let text = dot(&fixture("ls.pem"), &fixture("other.key"));
    let line = text.lines().position(|l| l.starts_with("key =")).unwrap() + 1;
    let e = err(&text);
    assert!(
        e.starts_with(&format!(
            "config.toml:{line}: ls.tls.key: {}",
            fixture("other.key")
        )) && e.contains("does not belong to"),
        "{e}"
    );
}

/// A certificate that expired (2020) or is not valid yet (2100), with its own
/// key: refused at the line of `cert`, its dates named.
#[test]
fn an_expired_or_not_yet_valid_certificate_is_refused() {
    for (file, what) in [
        (
            "expired.pem",
            "the certificate expired on Jan  2 00:00:00 2020",
        ),
        (
            "notyet.pem",
            "the certificate is not valid before Jan  1 00:00:00 2100",
        ),
    ] {
        let text = dot(&fixture(file), &fixture("ls.key"));
        let line = text.lines().position(|l| l.starts_with("cert =")).unwrap() + 1;
        let e = err(&text);
        assert!(
            e.contains(&format!(
                "config.toml:{line}: ls.tls.cert: {}: {what}",
                fixture(file)
            )),
            "{e}"
        );
    }
}

#[test]
fn https_rules() {
    let e = err(&with_table(&format!(
        "[ls.https]\ncert = \"{}\"",
        fixture("ls.pem")
    )));
    assert!(e.contains("ls.https.cert: cert and key go together"), "{e}");
    let e = err(&with_table("[ls.https]\npath = \"dns-query\""));
    assert!(e.contains("ls.https.path: must start with '/'"), "{e}");
    // A path no request could ask on, refused at its line.
    for path in ["/dns query", "/dns-query?x=1", "/dns#q", "/dnś"] {
        let text = with_table(&format!("[ls.https]\npath = \"{path}\""));
        let line = text.lines().position(|l| l.starts_with("path =")).unwrap() + 1;
        let e = err(&text);
        assert!(
            e.contains(&format!("config.toml:{line}: ls.https.path: "))
                && e.contains("no request would match"),
            "{path}: {e}"
        );
    }
    assert!(parse(&with_table("[ls.https]\npath = \"/resolve/v1;x=1:%41@\"")).is_ok());
    // No cert and no key: plain HTTP/2 behind a TLS proxy.
    assert!(parse(&with_table("[ls.https]\nlisten = [\"127.0.0.1:8080\"]")).is_ok());
}

/// HTTP/3 needs TLS (QUIC has no plain mode), and its UDP port cannot be
/// `[ls.quic]`'s too; with both, it is on.
#[test]
fn http3_needs_a_certificate_and_a_udp_port_of_its_own() {
    let e = err(&with_table(
        "[ls.https]\nlisten = [\"127.0.0.1:8080\"]\nhttp3 = true",
    ));
    assert!(e.contains("ls.https.http3: HTTP/3 runs over QUIC"), "{e}");
    let pair = format!(
        "cert = \"{}\"\nkey = \"{}\"",
        fixture("ls.pem"),
        fixture("ls.key")
    );
    let https = format!("[ls.https]\nlisten = [\"127.0.0.1:8443\"]\n{pair}\nhttp3 = true");
    let ls = parse(&with_table(&https)).unwrap().ls.unwrap();
    assert!(ls.https.is_some_and(|h| h.http3));
    let clash = format!("{https}\n\n[ls.quic]\nlisten = [\"127.0.0.1:8443\"]\n{pair}");
    let e = err(&with_table(&clash));
    assert!(
        e.contains("ls.quic.listen: 127.0.0.1:8443 is already used by ls.https.listen (UDP)"),
        "{e}"
    );
    let off = format!(
        "{}\n\n[ls.quic]\nlisten = [\"127.0.0.1:8443\"]\n{pair}",
        https.replace("http3 = true", "")
    );
    assert!(parse(&with_table(&off)).is_ok());
}

#[test]
fn an_encrypted_listener_cannot_share_an_address() {
    let text = with_table(&format!(
        "[ls.tls]\nlisten = [\"127.0.0.1:5300\"]\ncert = \"{}\"\nkey = \"{}\"",
        fixture("ls.pem"),
        fixture("ls.key")
    ));
    let e = err(&text);
    assert!(
        e.contains("ls.tls.listen: 127.0.0.1:5300 is already used by ls.listen"),
        "{e}"
    );
    let e = err(&with_table("[ls.https]\nlisten = [\"127.0.0.1:5301\"]"));
    assert!(
        e.contains("127.0.0.1:5301 is already used by ls.https.listen"),
        "{e}"
    );
}

#[test]
fn doq_shares_a_port_with_dot_but_not_with_plain_dns() {
    let (cert, key) = (fixture("ls.pem"), fixture("ls.key"));
    let quic = |addr: &str| {
        format!("[ls.quic]\nlisten = [\"{addr}\"]\ncert = \"{cert}\"\nkey = \"{key}\"")
    };
    let tls =
        format!("[ls.tls]\nlisten = [\"127.0.0.1:8853\"]\ncert = \"{cert}\"\nkey = \"{key}\"");
    // UDP beside TCP on one port, as 853 is served.
    let beside = with_table(&format!("{tls}\n\n{}", quic("127.0.0.1:8853")));
    assert!(parse(&beside).is_ok(), "{:?}", parse(&beside).err());
    // Plain DNS takes UDP at its port too.
    let e = err(&with_table(&quic("127.0.0.1:5300")));
    assert!(
        e.contains("ls.quic.listen: 127.0.0.1:5300 is already used by ls.listen"),
        "{e}"
    );
}

#[test]
fn conn_rate_limit_is_off_by_default_and_bounded() {
    let pair = dot(&fixture("ls.pem"), &fixture("ls.key"));
    let ls = parse(&pair).unwrap().ls.unwrap();
    assert_eq!(ls.tls.unwrap().conn_rate_limit, 0);
    let text = pair.replace("[ls.tls]", "[ls.tls]\nconn_rate_limit = 20");
    assert_eq!(
        parse(&text)
            .unwrap()
            .ls
            .unwrap()
            .tls
            .unwrap()
            .conn_rate_limit,
        20
    );
    let text = with_table("[ls.https]\nconn_rate_limit = 7");
    let https = parse(&text).unwrap().ls.unwrap().https.unwrap();
    assert_eq!(https.conn_rate_limit, 7);
    let e = err(&with_table("[ls.https]\nconn_rate_limit = 4000000000"));
    assert!(
        e.contains("ls.https.conn_rate_limit: must be at most 10000000, got 4000000000"),
        "{e}"
    );
    let e = err(&pair.replace("[ls.tls]", "[ls.tls]\nconn_rate_limit = -1"));
    assert!(e.contains("conn_rate_limit"), "{e}");
}

#[test]
fn trusted_proxies_are_networks_as_allow() {
    let https = |t: &str| parse(&with_table(t)).map(|c| c.ls.unwrap().https.unwrap());
    assert_eq!(https("[ls.https]").unwrap().trusted_proxies, Vec::new());
    let text = "[ls.https]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]";
    let got = https(text).unwrap().trusted_proxies;
    assert_eq!(
        got,
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"].map(net)
    );
    let e = err(&with_table("[ls.https]\ntrusted_proxies = [\"nonsense\"]"));
    assert!(e.contains("nonsense"), "{e}");
}

/// The 14-day warning, on a clock the test sets.
#[test]
fn a_certificate_is_warned_about_within_14_days_of_its_not_after() {
    use crate::config::expiry_warning_days;
    let now = 1_800_000_000;
    let day = 86_400;
    assert_eq!(expiry_warning_days(now + 30 * day, now), None);
    assert_eq!(
        expiry_warning_days(now + 14 * day, now),
        None,
        "14 days left"
    );
    assert_eq!(expiry_warning_days(now + 14 * day - 1, now), Some(13));
    assert_eq!(expiry_warning_days(now + 5 * day + 7, now), Some(5));
    assert_eq!(expiry_warning_days(now + 1, now), Some(0));
    assert_eq!(expiry_warning_days(now - 1, now), Some(-1), "expired");
}
