//! What the logs look like: the `tracing` subscriber every role installs
//! (filter, text or JSON lines on stderr, a process tag), and the LS's
//! per-query `debug` line.
//!
//! - [`init`]: the filter comes from `RUST_LOG`, else `--log`, else `info`;
//!   hickory-proto is held to its errors unless the filter names it. Lines
//!   are text ([`LogFormat::Text`], coloured on a terminal) or one JSON
//!   object per line ([`LogFormat::Json`]: `timestamp`, `level`, `fields`
//!   with `message`, `target`).
//! - The tag: a table server passes its name, and every line it writes then
//!   carries `ts=NAME` (a `ts` field in JSON), including the lines of the
//!   shared server layer that know nothing about table servers. `dnslb up`
//!   forwards its children's lines unchanged, so each one says which table
//!   server wrote it.
//! - [`QueryLine`]: the LS's query log (client, name, type, backend, rcode,
//!   µs) at `debug`, target [`QUERY_TARGET`], so `--log dnslb::query=debug`
//!   turns on that log alone. Nothing is logged per query at `info`.
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::dns::WireHeader;
use crate::server::Reply;

/// The target of the LS's query log.
pub const QUERY_TARGET: &str = "dnslb::query";

/// The target of [`to_stderr`]'s events: the binary's, as when it wrote them itself.
pub const OPERATOR_TARGET: &str = "dnslb";

/// The field every line of a tagged process carries (see [`init`]).
pub const TAG_FIELD: &str = "ts";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text, one line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The flag value (`text` or `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes one line for the operator on stderr: as it is, or as an event of
/// `level` (`ERROR`, `WARN`, else `INFO`) when the logs are JSON, so that every
/// line of stderr is then JSON. The events' target is [`OPERATOR_TARGET`].
pub fn to_stderr(format: LogFormat, level: Level, line: &str) {
    match (format, level) {
        (LogFormat::Text, _) => eprintln!("{line}"),
        (LogFormat::Json, Level::ERROR) => tracing::error!(target: OPERATOR_TARGET, "{line}"),
        (LogFormat::Json, Level::WARN) => tracing::warn!(target: OPERATOR_TARGET, "{line}"),
        (LogFormat::Json, _) => tracing::info!(target: OPERATOR_TARGET, "{line}"),
    }
}

/// The filter: `RUST_LOG` (`env`) wins, then `flag`, then `info`; plus
/// `hickory_proto=error` unless the filter names hickory (it logs a warning
/// per malformed packet) and `h2=error` unless it names `h2` (the HTTP/2
/// layer of DNS over HTTPS logs a warning per frame it does not expect, a
/// PING acknowledging nothing, a reset stream): any client could turn
/// either into a flood.
pub fn filter_directives(env: Option<&str>, flag: Option<&str>) -> String {
    let mut filter = env.or(flag).unwrap_or("info").to_owned();
    if !filter.contains("hickory") {
        filter.push_str(",hickory_proto=error");
    }
    let names_h2 = filter.split(',').any(|d| {
        let target = d.split(['=', '[']).next().unwrap_or("").trim();
        target == "h2" || target.starts_with("h2::")
    });
    if !names_h2 {
        filter.push_str(",h2=error");
    }
    filter
}

/// Installs the process-wide subscriber: stderr, `format`, the filter of
/// [`filter_directives`] (from `RUST_LOG` and `flag`); with `tag`, every
/// line carries `ts=TAG`. A filter that does not parse falls back to `info`
/// and says so in a warning. Does nothing if a subscriber is already set.
pub fn init(flag: Option<&str>, format: LogFormat, tag: Option<&str>) {
    let env = std::env::var("RUST_LOG").ok();
    let directives = filter_directives(env.as_deref(), flag);
    let (filter, bad) = match parse_filter(&directives) {
        Ok(f) => (f, None),
        Err(err) => (Targets::new().with_default(LevelFilter::INFO), Some(err)),
    };
    let ansi = format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The filter decides every level, not the builder's own (info) cap.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Four concrete subscriber types; each is installed where it is built.
    let installed = match (format, tag) {
        (LogFormat::Text, None) => builder.finish().with(filter).try_init(),
        (LogFormat::Json, None) => builder.json().finish().with(filter).try_init(),
        (LogFormat::Text, Some(t)) => builder
            .event_format(Tagged::new(format::format().with_ansi(ansi), t, false))
            .finish()
            .with(filter)
            .try_init(),
        (LogFormat::Json, Some(t)) => builder
            .event_format(Tagged::new(format::format().json(), t, true))
            .finish()
            .with(filter)
            .try_init(),
    };
    if let (Ok(()), Some(err)) = (installed, bad) {
        tracing::warn!(filter = %directives, %err, "cannot parse the log filter; logging at info");
    }
}

/// The filter of `directives`: comma-separated `target=level`, `level`
/// (the default) or `target` (all its levels); spaces around a directive
/// and empty directives are ignored. Span and field filters (`[...]`,
/// `{...}`) are refused rather than read as part of a target name.
///
/// # Errors
/// A directive that is not one of those forms, or an unknown level.
pub fn parse_filter(directives: &str) -> Result<Targets, String> {
    let list: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if let Some(d) = list.iter().find(|d| d.contains(['[', ']', '{', '}'])) {
        return Err(format!("`{d}`: span and field filters are not supported"));
    }
    list.join(",").parse().map_err(|e| format!("{e}"))
}

/// An event format that adds `ts=TAG` to every event that has no `ts`
/// field of its own (see the module docs).
struct Tagged<F> {
    inner: F,
    /// ` ts=TAG` (text) or `"ts":"TAG"` (JSON).
    addition: String,
    json: bool,
}

impl<F> Tagged<F> {
    fn new(inner: F, tag: &str, json: bool) -> Self {
        let addition = if json {
            // A string always serializes.
            let quoted = serde_json::to_string(tag).unwrap_or_else(|_| "\"?\"".to_owned());
            format!("\"{TAG_FIELD}\":{quoted}")
        } else {
            format!(" {TAG_FIELD}={tag}")
        };
        Tagged {
            inner,
            addition,
            json,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for Tagged<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().fields().field(TAG_FIELD).is_some() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let tagged = if self.json {
            tag_json(&line, &self.addition)
        } else {
            tag_text(&line, &self.addition)
        };
        writer.write_str(&tagged)
    }
}

/// `line` (ending in a newline or not) with `addition` before the newline.
fn tag_text(line: &str, addition: &str) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    format!("{body}{addition}\n")
}

/// A JSON event line with `addition` (`"key":value`) as the first member
/// of its `fields` object; unchanged if it has none.
fn tag_json(line: &str, addition: &str) -> String {
    const FIELDS: &str = "\"fields\":{";
    let Some(at) = line.find(FIELDS).map(|i| i + FIELDS.len()) else {
        return line.to_owned();
    };
    let (head, tail) = line.split_at(at);
    let comma = if tail.starts_with('}') { "" } else { "," };
    format!("{head}{addition}{comma}{tail}")
}

// ---------------------------------------------------------------------------
// The LS's query log
// ---------------------------------------------------------------------------

/// One client query, as the query log writes it once it is answered.
#[derive(Debug)]
pub struct QueryLine {
    client: SocketAddr,
    name: String,
    rtype: String,
}

impl QueryLine {
    /// Whether the query log is on (checked before building a line).
    pub fn enabled() -> bool {
        tracing::enabled!(target: QUERY_TARGET, tracing::Level::DEBUG)
    }

    /// The line of a query from `client` whose question section (from the
    /// end of the header) is `question`.
    pub fn new(client: SocketAddr, question: &[u8]) -> Self {
        let (name, rtype) = question_summary(question);
        QueryLine {
            client,
            name,
            rtype,
        }
    }

    /// Logs the line: `reply` was sent after `took`, with the answer of
    /// `backend` (`None`: made up here, or nothing sent).
    pub fn log(&self, reply: &Reply, backend: Option<&str>, took: Duration) {
        let rcode = match reply {
            Reply::One(b) => WireHeader::read(b).map_or("-", |h| rcode_name(h.rcode())),
            // Only a complete answer is streamed: a transfer (NOERROR).
            Reply::Stream(_) => "NOERROR",
            Reply::Drop => "dropped",
        };
        tracing::debug!(
            target: QUERY_TARGET,
            client = %self.client,
            name = %self.name,
            r#type = %self.rtype,
            backend = backend.unwrap_or("-"),
            rcode,
            us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            "query"
        );
    }
}

/// The name (presentation format, odd bytes as `\DDD`) and type (its
/// mnemonic, or `TYPEn`) of the first question in `question` (the bytes
/// after the header). A compressed or cut-short name shows what could be
/// read and ends in `?`; a missing type is `?`.
pub fn question_summary(question: &[u8]) -> (String, String) {
    let mut name = String::new();
    let mut rest = question;
    loop {
        let Some((&len, after)) = rest.split_first() else {
            name.push('?');
            return (name, "?".to_owned());
        };
        if len == 0 {
            rest = after;
            break;
        }
        let label = after.get(..usize::from(len)).filter(|_| len <= 63);
        let Some(label) = label else {
            name.push('?');
            return (name, "?".to_owned());
        };
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    name.push('\\');
                    name.push(char::from(b));
                }
                0x21..=0x7e => name.push(char::from(b)),
                _ => {
                    let _ = write!(name, "\\{b:03}");
                }
            }
        }
        name.push('.');
        rest = after.get(label.len()..).unwrap_or_default();
    }
    if name.is_empty() {
        name.push('.');
    }
    let rtype = match rest {
        [hi, lo, ..] => match RecordType::from(u16::from_be_bytes([*hi, *lo])) {
            RecordType::Unknown(n) => format!("TYPE{n}"),
            known => known.to_string(),
        },
        _ => "?".to_owned(),
    };
    (name, rtype)
}

/// The mnemonic of a 4-bit RCODE.
pub fn rcode_name(rcode: u8) -> &'static str {
    crate::dns::rcode_mnemonic(u16::from(rcode)).unwrap_or("RCODE?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(labels: &[&[u8]], rtype: u16) -> Vec<u8> {
        let mut q = Vec::new();
        for l in labels {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l);
        }
        q.push(0);
        q.extend_from_slice(&rtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn filter_precedence_and_hickory_guard() {
        assert_eq!(
            filter_directives(None, None),
            "info,hickory_proto=error,h2=error"
        );
        assert_eq!(
            filter_directives(None, Some("debug")),
            "debug,hickory_proto=error,h2=error"
        );
        assert_eq!(
            filter_directives(Some("warn"), Some("debug")),
            "warn,hickory_proto=error,h2=error"
        );
        assert_eq!(
            filter_directives(None, Some("hickory_proto=debug")),
            "hickory_proto=debug,h2=error"
        );
        // h2 named: as asked; a module of ours with h2 in its name is not h2.
        assert_eq!(
            filter_directives(None, Some("info,h2::proto=debug")),
            "info,h2::proto=debug,hickory_proto=error"
        );
        assert_eq!(
            filter_directives(None, Some("dnslb::server::doh_h2=debug")),
            "dnslb::server::doh_h2=debug,hickory_proto=error,h2=error"
        );
    }

    #[test]
    fn filter_reads_targets_levels_and_defaults() {
        use tracing::Level;
        let f = parse_filter(&filter_directives(None, Some("warn,dnslb::ls=debug"))).unwrap();
        assert!(f.would_enable("dnslb::ls::pool", &Level::DEBUG));
        assert!(!f.would_enable("dnslb::ls::pool", &Level::TRACE));
        assert!(f.would_enable("dnslb::ts", &Level::WARN));
        assert!(!f.would_enable("dnslb::ts", &Level::INFO));
        assert!(!f.would_enable("hickory_proto::op", &Level::WARN));
        assert!(f.would_enable("hickory_proto::op", &Level::ERROR));
        assert!(!f.would_enable("h2::proto", &Level::WARN));
        // A target alone: that target and nothing else, at every level.
        let f = parse_filter("dnslb::query").unwrap();
        assert!(f.would_enable("dnslb::query", &Level::TRACE));
        assert!(!f.would_enable("dnslb", &Level::ERROR));
        let f = parse_filter("dnslb::query=debug").unwrap();
        assert!(f.would_enable("dnslb::query", &Level::DEBUG));
        assert!(!f.would_enable("dnslb::ls", &Level::ERROR));
        // Spaces and empty directives are ignored; levels in any case.
        let f = parse_filter(" INFO , dnslb::query=Debug ,").unwrap();
        assert!(f.would_enable("dnslb::query", &Level::DEBUG));
        assert!(f.would_enable("dnslb::ls", &Level::INFO));
        assert!(!f.would_enable("dnslb::ls", &Level::DEBUG));
        assert!(parse_filter("off").unwrap().default_level() == Some(LevelFilter::OFF));
        // Refused: an unknown level, span and field filters, two `=`.
        assert!(parse_filter("dnslb=loud").is_err());
        assert!(parse_filter("info,dnslb[query]=debug").is_err());
        assert!(parse_filter("dnslb[{client}]=debug").is_err());
        assert!(parse_filter("a=b=c").is_err());
    }

    #[test]
    fn json_tag_goes_into_fields() {
        let line =
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"hi","n":1},"target":"x"}"#;
        let tagged = tag_json(&format!("{line}\n"), r#""ts":"ts1""#);
        let v: serde_json::Value = serde_json::from_str(&tagged).unwrap();
        assert_eq!(v["fields"]["ts"], "ts1");
        assert_eq!(v["fields"]["message"], "hi");
        assert!(tagged.ends_with('\n'));
        // No fields at all: still valid JSON.
        let empty = tag_json(r#"{"fields":{},"target":"x"}"#, r#""ts":"a\"b""#);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(v["fields"]["ts"], "a\"b");
        // Not an event line: unchanged.
        assert_eq!(tag_json("{}", r#""ts":"x""#), "{}");
    }

    #[test]
    fn text_tag_goes_before_the_newline() {
        assert_eq!(tag_text("a b\n", " ts=x"), "a b ts=x\n");
        assert_eq!(tag_text("a b", " ts=x"), "a b ts=x\n");
    }

    #[test]
    fn tagged_addition_is_escaped_json() {
        let t = Tagged::new((), "we\"ird", true);
        let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", t.addition)).unwrap();
        assert_eq!(v["ts"], "we\"ird");
        assert_eq!(Tagged::new((), "ts1", false).addition, " ts=ts1");
    }

    #[test]
    fn question_names_and_types() {
        let q = question(&[b"www", b"Example", b"com"], 28);
        assert_eq!(
            question_summary(&q),
            ("www.Example.com.".to_owned(), "AAAA".to_owned())
        );
        assert_eq!(
            question_summary(&question(&[], 2)),
            (".".to_owned(), "NS".to_owned())
        );
        // Hostile bytes never reach the log raw.
        let (name, _) = question_summary(&question(&[b"a.b", b"\n\x00\\", b" "], 1));
        assert_eq!(name, "a\\.b.\\010\\000\\\\.\\032.");
    }

    #[test]
    fn broken_questions_are_marked() {
        // A compression pointer, a label running past the end, nothing.
        assert_eq!(
            question_summary(&[3, b'w', b'w', b'w', 0xc0, 12]).0,
            "www.?"
        );
        assert_eq!(question_summary(&[9, b'a']).0, "?");
        assert_eq!(question_summary(&[]).0, "?");
        // A name without its type.
        assert_eq!(
            question_summary(&[1, b'a', 0]),
            ("a.".to_owned(), "?".to_owned())
        );
        assert_eq!(question_summary(&question(&[b"a"], 65280)).1, "TYPE65280");
    }

    #[test]
    fn rcodes_by_name() {
        assert_eq!(rcode_name(0), "NOERROR");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(5), "REFUSED");
        assert_eq!(rcode_name(15), "RCODE?");
    }
}
