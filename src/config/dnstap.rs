//! `[ls.dnstap]` and `dnstap` in `[[ts]]`: [`DnstapConfig`], where a server
//! writes its dnstap (Frame Streams over a Unix socket or TCP, docs/CONFIG.md (the LS)
//! "dnstap") and which messages, and the rules those keys follow.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::values::de_opt_addr;

keyword_enum! {
    /// `messages`: one kind of dnstap message a server writes.
    DnstapMessage, default ClientQuery {
        /// A query as the LS received it from a client.
        ClientQuery = "client-query",
        /// An answer as the LS sent it to a client.
        ClientResponse = "client-response",
        /// A query as the LS sent it to a backend.
        ForwarderQuery = "forwarder-query",
        /// An answer as the LS accepted it from a backend.
        ForwarderResponse = "forwarder-response",
        /// A query as a TS received it.
        AuthQuery = "auth-query",
        /// An answer as a TS sent it.
        AuthResponse = "auth-response",
    }
}

/// Which server a `dnstap` table belongs to: the messages it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnstapSide {
    /// `[ls.dnstap]`: client and forwarder messages.
    Ls,
    /// `dnstap` in `[[ts]]`: auth messages.
    Ts,
}

impl DnstapSide {
    /// The messages this side writes, all of them: the default of `messages`.
    pub fn all(self) -> &'static [DnstapMessage] {
        use DnstapMessage as M;
        match self {
            Self::Ls => &[
                M::ClientQuery,
                M::ClientResponse,
                M::ForwarderQuery,
                M::ForwarderResponse,
            ],
            Self::Ts => &[M::AuthQuery, M::AuthResponse],
        }
    }

    /// The table as the config names it.
    fn table(self) -> &'static str {
        match self {
            Self::Ls => "[ls.dnstap]",
            Self::Ts => "dnstap in [[ts]]",
        }
    }
}

/// `[ls.dnstap]` or `dnstap = { ... }` in `[[ts]]`: the table omitted = no
/// dnstap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnstapConfig {
    /// The collector's Unix socket (`fstrm_capture -u`); relative to the
    /// config file's folder. One of `socket` and `tcp`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// The collector's TCP address (`fstrm_capture -a ADDR -p PORT`).
    #[serde(default, deserialize_with = "de_opt_addr")]
    pub tcp: Option<SocketAddr>,
    /// The messages to write. \[every message of the side: the LS's four
    /// client and forwarder ones, the TS's two auth ones\]
    #[serde(default)]
    pub messages: Option<Vec<DnstapMessage>>,
    /// The identity each message carries; `""` leaves it out. \[the host
    /// name\]
    #[serde(default)]
    pub identity: Option<String>,
    /// The version each message carries; `""` leaves it out. \[`dnslb
    /// <version>`\]
    #[serde(default)]
    pub version: Option<String>,
    /// Frames waiting for the collector, at most; past it (a slow or absent
    /// collector) a frame is dropped and counted. \[16384\]
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Bytes waiting for the collector, at most (frames run from a hundred
    /// bytes to 64 KiB); past it a frame is dropped and counted.
    /// \[33554432: 32 MiB\]
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: usize,
}

/// `queue_size`'s default.
pub const DNSTAP_QUEUE_SIZE: usize = 16384;
/// The largest `queue_size`.
pub const DNSTAP_QUEUE_MAX: usize = 1 << 20;
/// `queue_bytes`' default: 32 MiB.
pub const DNSTAP_QUEUE_BYTES: usize = 32 << 20;
/// The smallest `queue_bytes`: 1 MiB (sixteen of the largest frames).
pub(super) const DNSTAP_QUEUE_BYTES_MIN: usize = 1 << 20;
/// The largest `queue_bytes`: 1 GiB.
pub(super) const DNSTAP_QUEUE_BYTES_MAX: usize = 1 << 30;
/// The longest Unix socket path, in bytes (`sun_path` is 108, with its NUL).
const SOCKET_PATH_MAX: usize = 107;
/// The longest `identity` or `version`, in bytes.
const LABEL_MAX: usize = 255;

/// The default of `queue_size`.
fn default_queue_size() -> usize {
    DNSTAP_QUEUE_SIZE
}

/// The default of `queue_bytes`.
fn default_queue_bytes() -> usize {
    DNSTAP_QUEUE_BYTES
}

impl DnstapConfig {
    /// A table writing to the Unix socket at `socket`, every other key at its
    /// default.
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: Some(socket.into()),
            tcp: None,
            messages: None,
            identity: None,
            version: None,
            queue_size: DNSTAP_QUEUE_SIZE,
            queue_bytes: DNSTAP_QUEUE_BYTES,
        }
    }

    /// The messages to write on `side`: `messages`, or all of the side's.
    pub fn messages_for(&self, side: DnstapSide) -> Vec<DnstapMessage> {
        match &self.messages {
            Some(m) => m.clone(),
            None => side.all().to_vec(),
        }
    }

    /// Every rule this table breaks on `side`, each as the key at fault
    /// (relative to the table; `""` for the table itself) and the message.
    pub(super) fn problems(&self, side: DnstapSide) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.socket, &self.tcp) {
            (None, None) => out.push((
                "",
                "needs `socket` or `tcp`: where the collector listens".into(),
            )),
            (Some(_), Some(_)) => out.push(("tcp", "takes `socket` or `tcp`, not both".into())),
            (Some(path), None) => {
                let len = path.as_os_str().len();
                if len == 0 {
                    out.push(("socket", "must not be empty".into()));
                } else if len > SOCKET_PATH_MAX {
                    out.push((
                        "socket",
                        format!(
                            "{} is {len} bytes; a Unix socket's path is at most {SOCKET_PATH_MAX}",
                            path.display()
                        ),
                    ));
                }
            }
            (None, Some(addr)) => {
                if addr.port() == 0 || addr.ip().is_unspecified() {
                    out.push(("tcp", format!("{addr} is not an address to connect to")));
                }
            }
        }
        if let Some(messages) = &self.messages {
            if messages.is_empty() {
                out.push((
                    "messages",
                    "must list at least one message (omit the table to turn dnstap off)".into(),
                ));
            }
            for (i, m) in messages.iter().enumerate() {
                if messages[..i].contains(m) {
                    out.push(("messages", format!("{m} is listed twice")));
                } else if !side.all().contains(m) {
                    let allowed: Vec<&str> = side.all().iter().map(|m| m.as_str()).collect();
                    out.push((
                        "messages",
                        format!("{} writes {}, not {m}", side.table(), allowed.join(", ")),
                    ));
                }
            }
        }
        if !(1..=DNSTAP_QUEUE_MAX).contains(&self.queue_size) {
            out.push((
                "queue_size",
                format!(
                    "must be in [1, {DNSTAP_QUEUE_MAX}], got {}",
                    self.queue_size
                ),
            ));
        }
        let bytes = DNSTAP_QUEUE_BYTES_MIN..=DNSTAP_QUEUE_BYTES_MAX;
        if !bytes.contains(&self.queue_bytes) {
            out.push((
                "queue_bytes",
                format!(
                    "must be in [{DNSTAP_QUEUE_BYTES_MIN}, {DNSTAP_QUEUE_BYTES_MAX}] (1 MiB to 1 GiB), got {}",
                    self.queue_bytes
                ),
            ));
        }
        for (key, value) in [("identity", &self.identity), ("version", &self.version)] {
            if let Some(v) = value
                && v.len() > LABEL_MAX
            {
                out.push((
                    key,
                    format!("must be at most {LABEL_MAX} bytes, got {}", v.len()),
                ));
            }
        }
        out
    }
}

/// Every rule the `dnstap` tables break (`ls`: `[ls.dnstap]`, `ts`: each
/// `[[ts]]`'s, in order): the key at fault (dotted: `ls.dnstap.socket`,
/// `ts.1.dnstap`), its table's, and what is wrong.
pub(super) fn problems<'a>(
    ls: Option<&'a DnstapConfig>,
    ts: impl Iterator<Item = Option<&'a DnstapConfig>>,
) -> Vec<(String, String, String)> {
    let ls = ls.map(|d| (DnstapSide::Ls, "ls.dnstap".to_owned(), d));
    let ts = ts
        .enumerate()
        .filter_map(|(i, d)| Some((DnstapSide::Ts, format!("ts.{i}.dnstap"), d?)));
    let mut out = Vec::new();
    for (side, table, d) in ls.into_iter().chain(ts) {
        for (key, msg) in d.problems(side) {
            let path = if key.is_empty() {
                table.clone()
            } else {
                format!("{table}.{key}")
            };
            out.push((path, table.clone(), msg));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const LS: &str = "[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n";
    const TS: &str = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\n";

    fn ls(table: &str) -> Result<Config, String> {
        let text = format!("{LS}[ls.dnstap]\n{table}\n");
        Config::from_toml(&text, Path::new("/etc/dnslb/c.toml")).map_err(|e| e.to_string())
    }

    fn ts(inline: &str) -> Result<Config, String> {
        let text = format!("{TS}dnstap = {inline}\n");
        Config::from_toml(&text, Path::new("/etc/dnslb/c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn omitted_is_off_and_given_takes_defaults_and_a_relative_socket() {
        let c = Config::from_toml(LS, Path::new("c.toml")).unwrap();
        assert_eq!(c.ls.unwrap().dnstap, None);
        let d = ls("socket = \"run/tap.sock\"")
            .unwrap()
            .ls
            .unwrap()
            .dnstap
            .unwrap();
        assert_eq!(d, DnstapConfig::unix("/etc/dnslb/run/tap.sock"));
        assert_eq!(d.messages_for(DnstapSide::Ls), DnstapSide::Ls.all());
        let t = ts("{ tcp = \"127.0.0.1:6000\", messages = [\"auth-response\"] }").unwrap();
        let d = t.ts[0].dnstap.clone().unwrap();
        assert_eq!(d.tcp, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(
            d.messages_for(DnstapSide::Ts),
            [DnstapMessage::AuthResponse]
        );
        assert_eq!(
            Config::from_toml(TS, Path::new("c.toml")).unwrap().ts[0].dnstap,
            None
        );
    }

    #[test]
    fn every_key_of_the_ls_table_is_read() {
        let d = ls(
            "tcp = \"[::1]:6000\"\nmessages = [\"client-query\", \"forwarder-response\"]\n\
                    identity = \"ls-east\"\nversion = \"\"\nqueue_size = 100\n\
                    queue_bytes = 4194304",
        )
        .unwrap()
        .ls
        .unwrap()
        .dnstap
        .unwrap();
        assert_eq!(d.tcp, Some("[::1]:6000".parse().unwrap()));
        assert_eq!(
            d.messages,
            Some(vec![
                DnstapMessage::ClientQuery,
                DnstapMessage::ForwarderResponse
            ])
        );
        assert_eq!(
            (d.identity.as_deref(), d.version.as_deref()),
            (Some("ls-east"), Some(""))
        );
        assert_eq!((d.queue_size, d.queue_bytes), (100, 4 << 20));
    }

    #[test]
    fn broken_tables_are_reported_at_their_key_line() {
        let long = format!("socket = \"/{}\"", "s".repeat(107));
        for (table, want) in [
            (
                "queue_size = 5",
                "c.toml:5: ls.dnstap: needs `socket` or `tcp`: where the collector listens",
            ),
            (
                "socket = \"/s\"\ntcp = \"127.0.0.1:6000\"",
                "c.toml:7: ls.dnstap.tcp: takes `socket` or `tcp`, not both",
            ),
            (
                "tcp = \"0.0.0.0:6000\"",
                "c.toml:6: ls.dnstap.tcp: 0.0.0.0:6000 is not an address to connect to",
            ),
            (&long, "c.toml:6: ls.dnstap.socket: /sss"),
            (
                "socket = \"/s\"\nmessages = []",
                "c.toml:7: ls.dnstap.messages: must list at least one message (omit the table to turn dnstap off)",
            ),
            (
                "socket = \"/s\"\nmessages = [\"client-query\", \"auth-query\"]",
                "c.toml:7: ls.dnstap.messages: [ls.dnstap] writes client-query, client-response, forwarder-query, forwarder-response, not auth-query",
            ),
            (
                "socket = \"/s\"\nmessages = [\"client-query\", \"client-query\"]",
                "c.toml:7: ls.dnstap.messages: client-query is listed twice",
            ),
            (
                "socket = \"/s\"\n\n\nqueue_size = 0",
                "c.toml:9: ls.dnstap.queue_size: must be in [1, 1048576], got 0",
            ),
            (
                "socket = \"/s\"\nqueue_bytes = 65536",
                "c.toml:7: ls.dnstap.queue_bytes: must be in [1048576, 1073741824] (1 MiB to 1 GiB), got 65536",
            ),
            (
                "socket = \"/s\"\nmessages = [\"client-qurey\"]",
                "c.toml:7: ls.dnstap.messages: expected one of client-query",
            ),
            (
                "socket = \"/s\"\nsockt = \"/t\"",
                "c.toml:7: unknown key 'sockt' in [ls.dnstap] (did you mean 'socket'?)",
            ),
        ] {
            let text = format!("{LS}[ls.dnstap]\n{table}\n");
            let err = Config::from_toml(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{table}:\n got {err}\nwant {want}");
        }
    }

    /// A relative `socket` is judged on the path connected to (the
    /// config's folder made absolute), not as spelled relative to `-c`:
    /// `-c c.toml` and `-c $PWD/c.toml` give the same verdict.
    #[test]
    fn a_relative_socket_is_checked_on_its_resolved_path() {
        let cwd = std::env::current_dir().unwrap();
        // Short as spelled, too long once resolved.
        let name = "a".repeat(107 - cwd.as_os_str().len());
        let text = format!("{LS}[ls.dnstap]\nsocket = \"{name}\"\n");
        let abs = cwd.join("c.toml");
        for path in [Path::new("c.toml"), abs.as_path()] {
            let err = Config::from_toml(&text, path).unwrap_err().to_string();
            let want = format!("ls.dnstap.socket: {}", cwd.join(&name).display());
            assert!(err.contains(&want), "-c {}: {err}", path.display());
        }
        let short = format!("{LS}[ls.dnstap]\nsocket = \"tap.sock\"\n");
        let c = Config::from_toml(&short, Path::new("c.toml")).unwrap();
        let socket = c.ls.unwrap().dnstap.unwrap().socket.unwrap();
        assert_eq!(socket, cwd.join("tap.sock"));
    }

    #[test]
    fn a_ts_writes_auth_messages_only() {
        let err = ts("{ socket = \"/s\", messages = [\"client-query\"] }").unwrap_err();
        assert_eq!(
            err,
            "/etc/dnslb/c.toml:5: ts.dnstap.messages: dnstap in [[ts]] writes auth-query, auth-response, not client-query"
        );
        assert!(
            ts("{ messages = [\"auth-query\"] }")
                .unwrap_err()
                .contains("ts.dnstap: needs `socket` or `tcp`")
        );
    }
}
