//! `dnslb resolve`: the batch client.
//!
//! Reads hostnames (one a line), asks a DNS server for the A records of each over real
//! DNS, and writes `hostname IP A` (one line per address) or
//! `hostname - Error:HOST NOT FOUND`, in input order, with each hostname spelled exactly
//! as in the input (SPEC §2).
//!
//! The server (`-s`, [`ServerSpec`]) is `IP`, `IP:port`, `[v6]:port` or `host[:port]`,
//! port 53 by default; a host name is looked up with the system resolver.
//!
//! How a name is looked up ([`resolve_all`]):
//! - each try is a fresh UDP socket *connected* to the server (so the kernel drops
//!   datagrams from any other address and reports ICMP port unreachable as
//!   `ECONNREFUSED`), a random ID, RD=1 and EDNS(0);
//! - only a response with the same ID and the same question is accepted; anything else
//!   is ignored and the wait goes on until the per-query timeout;
//! - TC=1 → the same query again over TCP; a timeout → a new try, up to
//!   [`ResolveOptions::retries`] more, then [`Outcome::TimedOut`];
//! - at most [`ResolveOptions::concurrency`] lookups are in flight, each an owned task of
//!   one `JoinSet`, and a name that appears several times (in any case) is asked once.
//!
//! A batch ([`run`]) goes on past a line that is not a hostname: the line is reported
//! on stderr as `file:line: what is wrong` (`<stdin>:line` for standard input) and
//! written as not found, in its place. The progress bar (on a terminal, for long
//! inputs) and the summary printed on stderr at the end both count input lines.
//!
//! The run is an error ([`ResolveError`]) only when it cannot be done or says nothing:
//! unreadable input, unwritable output, a server name that cannot be looked up, no
//! server at the address, or a server that did not answer a single query (a batch in
//! which every name timed out is not a success). Names that are not found, time out or
//! fail while the server answers others are ordinary outcomes (SPEC §6).
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::ts::table::parse_hostname;

mod client;
mod server;
use client::{Client, Lookup};
pub use server::{DNS_PORT, ServerLookupError, ServerSpec, ServerSpecError};

/// Default number of lookups in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default wait for the answer to one query (one try).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of new tries after a timeout.
pub const DEFAULT_RETRIES: u32 = 1;

/// What the output says for a name without addresses.
const NOT_FOUND: &str = "Error:HOST NOT FOUND";
/// The name of standard input and output in messages.
const STDIN: &str = "<stdin>";
const STDOUT: &str = "<stdout>";

/// How to run a batch of lookups.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// The DNS server to ask (UDP, and TCP for truncated answers).
    pub server: ServerSpec,
    /// Lookups in flight at once (at least 1 is used).
    pub concurrency: usize,
    /// Wait for the answer to one query, per try and per transport.
    pub timeout: Duration,
    /// New tries of a name after a timeout.
    pub retries: u32,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
}

impl ResolveOptions {
    /// Options for `server` with every other knob at its default and no progress bar.
    pub fn new(server: impl Into<ServerSpec>) -> Self {
        ResolveOptions {
            server: server.into(),
            concurrency: DEFAULT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            progress: false,
        }
    }

    /// How many tries a name gets before it is [`Outcome::TimedOut`].
    pub fn tries(&self) -> u32 {
        self.retries.saturating_add(1)
    }
}

/// What became of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with A records for the name (after any CNAME chain), in answer order.
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN, or NOERROR without A records (NODATA).
    NotFound,
    /// No answer on any try.
    TimedOut,
    /// The server answered an error rcode (the mnemonic, e.g. `"SERVFAIL"`), or the
    /// lookup failed locally or on the network (a lowercase description).
    Failed(String),
    /// The input line is not a hostname (what is wrong); it was not asked.
    Invalid(String),
}

/// Counts of a finished run, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Input lines with a name (duplicates and bad lines included; blank lines and
    /// comments not).
    pub total: usize,
    /// Names with at least one address.
    pub found: usize,
    /// Names the server says do not exist or have no A records.
    pub not_found: usize,
    /// Names without an answer on any try.
    pub timed_out: usize,
    /// Names answered with an error rcode or failed on the network.
    pub failed: usize,
    /// Lines that are not hostnames.
    pub invalid: usize,
}

impl Summary {
    /// Counts `outcomes`.
    pub fn tally(outcomes: &[Outcome]) -> Self {
        let mut s = Summary {
            total: outcomes.len(),
            ..Summary::default()
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Addresses(a) if !a.is_empty() => s.found += 1,
                Outcome::Addresses(_) | Outcome::NotFound => s.not_found += 1,
                Outcome::TimedOut => s.timed_out += 1,
                Outcome::Failed(_) => s.failed += 1,
                Outcome::Invalid(_) => s.invalid += 1,
            }
        }
        s
    }

    /// The line printed on stderr at the end of a run that took `elapsed`, e.g.
    /// `dnslb resolve: 9 lines in 0.42 s (21 qps): 5 resolved, 2 not found,
    /// 1 timed out, 0 failed, 1 bad`; qps counts input lines per second, as the
    /// progress bar does.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        // Lines over seconds; a run shorter than 1 ms counts as 1 ms.
        #[allow(clippy::cast_precision_loss)]
        let qps = self.total as f64 / secs.max(0.001);
        format!(
            "dnslb resolve: {} lines in {secs:.2} s ({qps:.0} qps): {} resolved, {} not found, \
             {} timed out, {} failed, {} bad",
            self.total, self.found, self.not_found, self.timed_out, self.failed, self.invalid
        )
    }
}

/// A line of the input that is not a hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The input file, or `<stdin>`.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

/// Why a batch could not run, or ran without a single answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The input could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The input file, or `<stdin>`.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A name given to [`resolve_all`] is not a hostname.
    #[error("bad hostname '{name}': {msg}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The output could not be written.
    #[error("cannot write {file}: {source}")]
    Write {
        /// The output file, or `<stdout>`.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The server's host name could not be looked up.
    #[error(transparent)]
    Server(#[from] ServerLookupError),
    /// Every query was refused (ICMP port unreachable): nothing listens at the address.
    #[error("no DNS server at {0}: every query was refused (port unreachable)")]
    NoServer(SocketAddr),
    /// The server did not answer a single query.
    #[error(
        "no answer from {server}: {} asked, not one answered in {}",
        names_text(*.names),
        tries_text(*.tries, *.timeout_ms)
    )]
    NoAnswer {
        /// The server's address.
        server: SocketAddr,
        /// Distinct names asked.
        names: usize,
        /// Tries per name.
        tries: u32,
        /// Wait per try, in ms.
        timeout_ms: u128,
    },
    /// A lookup task ended without a result (a bug).
    #[error("a lookup task failed: {0}")]
    Task(#[from] JoinError),
}

/// `1 name`, `2 names`.
fn names_text(names: usize) -> String {
    if names == 1 {
        "1 name".into()
    } else {
        format!("{names} names")
    }
}

/// `1 try of 2000 ms`, `2 tries of 2000 ms each`.
fn tries_text(tries: u32, timeout_ms: u128) -> String {
    if tries == 1 {
        format!("1 try of {timeout_ms} ms")
    } else {
        format!("{tries} tries of {timeout_ms} ms each")
    }
}

/// The output text for one name: one `name IP A` line per address, or
/// `name - Error:HOST NOT FOUND`; several lines are joined by `\n`, with no trailing
/// newline.
pub fn format_line(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Addresses(addrs) if !addrs.is_empty() => addrs
            .iter()
            .map(|a| format!("{name} {a} A"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => format!("{name} - {NOT_FOUND}"),
    }
}

/// Looks up the A records of every name; the outcomes are in the order of `names`.
///
/// # Errors
/// [`ResolveError::BadName`] if a name is not a hostname (before any query is sent),
/// [`ResolveError::Server`] if the server's name cannot be looked up,
/// [`ResolveError::NoServer`] if every query was refused.
pub async fn resolve_all(
    names: Vec<String>,
    opts: &ResolveOptions,
) -> Result<Vec<Outcome>, ResolveError> {
    let names = names
        .iter()
        .map(|text| {
            query_name(text).map_err(|msg| ResolveError::BadName {
                name: text.clone(),
                msg,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let server = opts.server.socket_addr().await?;
    let lines: Vec<Result<Name, String>> = names.into_iter().map(Ok).collect();
    let resolved = resolve_lines(&lines, opts, server, &ProgressBar::hidden()).await?;
    Ok(resolved.outcomes)
}

/// The whole `dnslb resolve` command: reads `input` (stdin if `None`), resolves every
/// name, writes the result to `output` (stdout if `None`), and prints on stderr each
/// bad line (as it is read), a note for each name that timed out or failed, and the
/// summary ([`Summary::line`]).
///
/// # Errors
/// Unreadable input, unwritable output, a server name that cannot be looked up,
/// [`ResolveError::NoServer`], or [`ResolveError::NoAnswer`] (then nothing is written:
/// the error is the one line on stderr).
pub async fn run(
    input: Option<&Path>,
    output: Option<&Path>,
    opts: ResolveOptions,
) -> Result<Summary, ResolveError> {
    let (file, bytes) = match input {
        Some(path) => {
            let file = path.display().to_string();
            match tokio::fs::read(path).await {
                Ok(bytes) => (file, bytes),
                Err(source) => return Err(ResolveError::Read { file, source }),
            }
        }
        None => {
            let mut bytes = Vec::new();
            if let Err(source) = tokio::io::stdin().read_to_end(&mut bytes).await {
                return Err(ResolveError::Read {
                    file: STDIN.into(),
                    source,
                });
            }
            (STDIN.into(), bytes)
        }
    };
    let (lines, bad) = parse_input(&bytes, &file);
    for b in &bad {
        eprintln!("{b}");
    }
    let server = opts.server.socket_addr().await?;

    // Open the output before the (possibly long) run, so a bad path fails at once.
    let (out_file, sink): (String, Box<dyn AsyncWrite + Unpin + Send>) = match output {
        Some(path) => {
            let file = path.display().to_string();
            match tokio::fs::File::create(path).await {
                Ok(f) => (file, Box::new(f)),
                Err(source) => return Err(ResolveError::Write { file, source }),
            }
        }
        None => (STDOUT.into(), Box::new(tokio::io::stdout())),
    };

    let started = Instant::now();
    let names: Vec<Result<Name, String>> = lines.iter().map(|(_, n)| n.clone()).collect();
    let bar = progress_bar(
        names.len(),
        opts.progress && names.len() >= PROGRESS_MIN_NAMES,
    );
    let resolved = resolve_lines(&names, &opts, server, &bar).await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    resolved.check_heard(server, &opts)?;
    let outcomes = resolved.outcomes;

    let mut out = BufWriter::new(sink);
    let written: io::Result<()> = async {
        for ((text, _), outcome) in lines.iter().zip(&outcomes) {
            if let Some(n) = note(text, outcome, opts.tries()) {
                eprintln!("{n}");
            }
            out.write_all(format_line(text, outcome).as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await
    }
    .await;
    written.map_err(|source| ResolveError::Write {
        file: out_file,
        source,
    })?;
    let summary = Summary::tally(&outcomes);
    eprintln!("{}", summary.line(elapsed));
    Ok(summary)
}

/// The stderr note for a name that timed out or failed, `None` for the others (a bad
/// line is reported as it is read).
fn note(name: &str, outcome: &Outcome, tries: u32) -> Option<String> {
    let why = match outcome {
        Outcome::TimedOut => {
            let noun = if tries == 1 { "try" } else { "tries" };
            format!("timed out after {tries} {noun}")
        }
        Outcome::Failed(rcode) if is_rcode_mnemonic(rcode) => {
            format!("server answered {rcode}")
        }
        Outcome::Failed(why) => why.clone(),
        Outcome::Addresses(_) | Outcome::NotFound | Outcome::Invalid(_) => return None,
    };
    Some(format!("dnslb resolve: {name}: {why}"))
}

/// Whether a [`Outcome::Failed`] text is an rcode (`SERVFAIL`, `RCODE12`), not a
/// description of a local failure.
fn is_rcode_mnemonic(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// One input line with a name: `(hostname as written, name to query or why it is
/// not a hostname)`.
type InputLine = (String, Result<Name, String>);

/// Splits the input into its lines with a name, in order, skipping blank lines and
/// `#` comments; a line that is not a hostname is kept (it is written as not found)
/// and also reported, naming `file:line`.
fn parse_input(bytes: &[u8], file: &str) -> (Vec<InputLine>, Vec<BadLine>) {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let (text, checked) = match std::str::from_utf8(raw) {
            Ok(line) => {
                let text = line.trim();
                (
                    text.to_owned(),
                    query_name(text).map_err(|why| format!("bad hostname '{text}': {why}")),
                )
            }
            Err(_) => {
                let lossy = String::from_utf8_lossy(raw);
                (lossy.trim().to_owned(), Err("not valid UTF-8".to_owned()))
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if let Err(msg) = &checked {
            bad.push(BadLine {
                file: file.to_owned(),
                line: index + 1,
                msg: msg.clone(),
            });
        }
        lines.push((text, checked));
    }
    (lines, bad)
}

/// Checks that `text` is a hostname to ask for (no root, no wildcard), case kept.
fn query_name(text: &str) -> Result<Name, String> {
    if text.is_empty() || text == "." {
        return Err("not a hostname".into());
    }
    if text == "*" || text.starts_with("*.") {
        return Err("a wildcard is not a hostname".into());
    }
    parse_hostname(text)
}

/// The outcomes of a batch, and whether the server was heard from at all.
#[derive(Debug)]
struct Resolved {
    /// One per input line, in input order.
    outcomes: Vec<Outcome>,
    /// Distinct names asked.
    asked: usize,
    /// Distinct names the server answered (any rcode, or TC=1).
    answered: usize,
}

impl Resolved {
    /// [`ResolveError::NoAnswer`] when names were asked and not one was answered.
    fn check_heard(&self, server: SocketAddr, opts: &ResolveOptions) -> Result<(), ResolveError> {
        if self.asked > 0 && self.answered == 0 {
            return Err(ResolveError::NoAnswer {
                server,
                names: self.asked,
                tries: opts.tries(),
                timeout_ms: opts.timeout.as_millis(),
            });
        }
        Ok(())
    }
}

/// Resolves every line's name (a bad line is not asked and is [`Outcome::Invalid`]);
/// `bar` advances by input lines: all bad lines at once, then each distinct name by
/// the number of lines that ask for it.
async fn resolve_lines(
    lines: &[Result<Name, String>],
    opts: &ResolveOptions,
    server: SocketAddr,
    bar: &ProgressBar,
) -> Result<Resolved, ResolveError> {
    // Ask each distinct name once; `slot[i]` is line i's index in `unique`, or
    // `None` for a bad line.
    let mut first: HashMap<LowerName, usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut lines_per_name: Vec<u64> = Vec::new();
    let mut slot = Vec::with_capacity(lines.len());
    for line in lines {
        let Ok(name) = line else {
            bar.inc(1);
            slot.push(None);
            continue;
        };
        let index = *first.entry(LowerName::new(name)).or_insert_with(|| {
            unique.push(name.clone());
            lines_per_name.push(0);
            unique.len() - 1
        });
        if let Some(n) = lines_per_name.get_mut(index) {
            *n += 1;
        }
        slot.push(Some(index));
    }

    let asked = unique.len();
    let looked_up = lookup_all(unique, &lines_per_name, opts, server, bar).await?;
    if !looked_up.is_empty() && looked_up.iter().all(|r| matches!(r, Lookup::Refused)) {
        return Err(ResolveError::NoServer(server));
    }
    let answered = looked_up.iter().filter(|l| l.answered()).count();
    let outcomes: Vec<Outcome> = looked_up.into_iter().map(Lookup::into_outcome).collect();
    let outcomes = slot
        .iter()
        .zip(lines)
        .map(|(index, line)| match (index, line) {
            (_, Err(why)) => Outcome::Invalid(why.clone()),
            (Some(i), Ok(_)) => outcomes.get(*i).cloned().unwrap_or_else(|| {
                // cannot happen: every slot indexes `unique`, which `outcomes` mirrors
                Outcome::Failed("no result".into())
            }),
            (None, Ok(_)) => Outcome::Failed("no result".into()),
        })
        .collect();
    Ok(Resolved {
        outcomes,
        asked,
        answered,
    })
}

/// Looks up `names` with at most `opts.concurrency` in flight; results by index.
/// `bar` advances by `weights[i]` when name i is done.
async fn lookup_all(
    names: Vec<Name>,
    weights: &[u64],
    opts: &ResolveOptions,
    server: SocketAddr,
    bar: &ProgressBar,
) -> Result<Vec<Lookup>, ResolveError> {
    let limit = opts.concurrency.max(1);
    let client = Client {
        server,
        timeout: opts.timeout,
        tries: opts.tries(),
    };
    let mut results: Vec<Option<Lookup>> = (0..names.len()).map(|_| None).collect();
    let mut pending = names.into_iter().enumerate();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < limit {
            let Some((index, name)) = pending.next() else {
                break;
            };
            tasks.spawn(async move { (index, client.lookup(&name).await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, lookup) = joined?;
        if let Some(slot) = results.get_mut(index) {
            *slot = Some(lookup);
        }
        bar.inc(weights.get(index).copied().unwrap_or(1));
    }
    Ok(results
        .into_iter()
        .map(|r| {
            // cannot be `None`: every index was spawned once and joined above
            r.unwrap_or_else(|| Lookup::Done {
                outcome: Outcome::Failed("no result".into()),
                answered: false,
            })
        })
        .collect())
}

/// Inputs shorter than this finish too fast for a progress bar to help.
const PROGRESS_MIN_NAMES: usize = 100;

/// A progress bar on stderr counting input lines, or a hidden one.
fn progress_bar(len: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(len).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        ProgressStyle::with_template("{wide_bar} {pos}/{len} lines, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use tokio::net::UdpSocket;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn lines_are_formatted_per_address_or_not_found() {
        let two = Outcome::Addresses(vec![[192, 0, 2, 1].into(), [192, 0, 2, 2].into()]);
        assert_eq!(
            format_line("WwW.Example.com", &two),
            "WwW.Example.com 192.0.2.1 A\nWwW.Example.com 192.0.2.2 A"
        );
        for o in [
            Outcome::NotFound,
            Outcome::TimedOut,
            Outcome::Failed("SERVFAIL".into()),
            Outcome::Addresses(vec![]),
        ] {
            assert_eq!(
                format_line("x.example", &o),
                "x.example - Error:HOST NOT FOUND"
            );
        }
    }

    #[test]
    fn input_skips_blank_and_comment_lines_and_keeps_spelling() {
        let text = b"# list\n\n  WwW.Example.COM.  \r\n\t# indented comment\nb.example\n";
        let (lines, bad) = parse_input(text, "in.txt");
        assert!(bad.is_empty());
        let texts: Vec<&str> = lines.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["WwW.Example.COM.", "b.example"]);
        assert_eq!(lines[0].1, Ok(name("www.example.com.")));
    }

    #[test]
    fn bad_lines_are_kept_in_place_and_reported_with_file_and_line() {
        let (lines, bad) = parse_input(b"a.example\n\nbad name.example\nc.example\n", "in.txt");
        let texts: Vec<&str> = lines.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["a.example", "bad name.example", "c.example"]);
        assert!(lines[1].1.is_err() && lines[2].1.is_ok());
        let shown: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["in.txt:3: bad hostname 'bad name.example': bad character ' '"]
        );
        let one = |text: &[u8], file| {
            let (_, bad) = parse_input(text, file);
            assert_eq!(bad.len(), 1, "{bad:?}");
            bad[0].to_string()
        };
        assert_eq!(
            one(b"a..b\n", "<stdin>"),
            "<stdin>:1: bad hostname 'a..b': empty label"
        );
        assert!(one(b"ok.example\n*.example\n", "f").starts_with("f:2: "));
        assert_eq!(one(b"\xff\n", "f"), "f:1: not valid UTF-8");
        assert_eq!(one(b".\n", "f"), "f:1: bad hostname '.': not a hostname");
        // The line is written as not found, in its place, spelled as read.
        let (lines, _) = parse_input(b"ok.example\nx\xffy\n", "f");
        assert_eq!(lines[1].0, "x\u{fffd}y");
    }

    #[test]
    fn notes_for_timeouts_and_failures_only() {
        assert_eq!(
            note("a.example", &Outcome::TimedOut, 2).unwrap(),
            "dnslb resolve: a.example: timed out after 2 tries"
        );
        assert_eq!(
            note("a.example", &Outcome::TimedOut, 1).unwrap(),
            "dnslb resolve: a.example: timed out after 1 try"
        );
        assert_eq!(
            note("a.example", &Outcome::Failed("SERVFAIL".into()), 2).unwrap(),
            "dnslb resolve: a.example: server answered SERVFAIL"
        );
        assert_eq!(
            note(
                "a.example",
                &Outcome::Failed("connection refused".into()),
                2
            )
            .unwrap(),
            "dnslb resolve: a.example: connection refused"
        );
        assert_eq!(note("a.example", &Outcome::NotFound, 2), None);
    }

    #[test]
    fn summary_counts_outcomes() {
        let s = Summary::tally(&[
            Outcome::Addresses(vec![Ipv4Addr::LOCALHOST]),
            Outcome::NotFound,
            Outcome::NotFound,
            Outcome::TimedOut,
            Outcome::Failed("SERVFAIL".into()),
            Outcome::Invalid("empty label".into()),
        ]);
        assert_eq!(
            s,
            Summary {
                total: 6,
                found: 1,
                not_found: 2,
                timed_out: 1,
                failed: 1,
                invalid: 1,
            }
        );
        assert_eq!(
            s.line(Duration::from_millis(1500)),
            "dnslb resolve: 6 lines in 1.50 s (4 qps): 1 resolved, 2 not found, 1 timed out, \
             1 failed, 1 bad"
        );
        // An instant run does not divide by zero.
        assert!(s.line(Duration::ZERO).contains("(6000 qps)"));
        assert_eq!(note("x", &Outcome::Invalid("why".into()), 2), None);
        assert_eq!(
            format_line("a b", &Outcome::Invalid("why".into())),
            "a b - Error:HOST NOT FOUND"
        );
    }

    /// A server on 127.0.0.1 that answers NXDOMAIN to every query, except
    /// names starting with `silent`, which it ignores.
    async fn nxdomain_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let mut m = Message::from_vec(&buf[..n]).unwrap();
                if m.queries[0].name().to_ascii().starts_with("silent") {
                    continue;
                }
                m.metadata.message_type = MessageType::Response;
                m.metadata.response_code = ResponseCode::NXDomain;
                let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
            }
        });
        (addr, task)
    }

    fn lines_of(list: &[&str]) -> Vec<Result<Name, String>> {
        list.iter().map(|t| query_name(t)).collect()
    }

    #[tokio::test]
    async fn the_progress_bar_counts_input_lines_and_bad_lines_keep_their_place() {
        let (server, task) = nxdomain_server().await;
        let opts = ResolveOptions::new(server);
        // 6 lines, 3 distinct names, one bad line.
        let lines = lines_of(&[
            "a.example",
            "A.EXAMPLE",
            "b..x",
            "b.example",
            "a.example",
            "c.example",
        ]);
        let bar = ProgressBar::hidden();
        bar.set_length(6);
        let r = resolve_lines(&lines, &opts, server, &bar).await.unwrap();
        assert_eq!(bar.position(), 6, "every input line counted once");
        assert_eq!((r.asked, r.answered), (3, 3));
        assert_eq!(r.outcomes.len(), 6);
        assert_eq!(r.outcomes[2], Outcome::Invalid("empty label".into()));
        for i in [0, 1, 3, 4, 5] {
            assert_eq!(r.outcomes[i], Outcome::NotFound, "line {i}");
        }
        assert!(r.check_heard(server, &opts).is_ok());
        task.abort();
    }

    #[tokio::test]
    async fn a_batch_the_server_never_answered_is_an_error_one_answer_is_not() {
        let (server, task) = nxdomain_server().await;
        let opts = ResolveOptions {
            timeout: Duration::from_millis(100),
            retries: 0,
            ..ResolveOptions::new(server)
        };
        let bar = ProgressBar::hidden();
        let none = resolve_lines(
            &lines_of(&["silent1.example", "silent2.example"]),
            &opts,
            server,
            &bar,
        )
        .await
        .unwrap();
        assert_eq!(none.outcomes, [Outcome::TimedOut, Outcome::TimedOut]);
        let err = none.check_heard(server, &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no answer from {server}: 2 names asked, not one answered in 1 try of 100 ms")
        );
        let one = resolve_lines(
            &lines_of(&["silent1.example", "a.example"]),
            &opts,
            server,
            &bar,
        )
        .await
        .unwrap();
        assert_eq!(one.answered, 1);
        assert!(one.check_heard(server, &opts).is_ok());
        // Only bad lines: nothing was asked, nothing to complain about.
        let bad = resolve_lines(&lines_of(&["a..b"]), &opts, server, &bar)
            .await
            .unwrap();
        assert_eq!(bad.asked, 0);
        assert!(bad.check_heard(server, &opts).is_ok());
        task.abort();
    }
}
