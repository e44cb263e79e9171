//! `dnslb resolve`: the batch client.
//!
//! Reads hostnames (one a line), asks a DNS server for the A records of each over real
//! DNS, and writes `hostname IP A` (one line per address) or
//! `hostname - Error:HOST NOT FOUND`, in input order, with each hostname spelled exactly
//! as in the input (README's command table).
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
//! fail while the server answers others are ordinary outcomes (docs/DEPLOY.md).
//!
//! # Map
//! - this file: the command ([`run`]) and the library call ([`resolve_all`]);
//! - `options.rs`: [`ResolveOptions`] and [`ResolveError`];
//! - `input.rs`: the input's lines and [`BadLine`]s;
//! - `batch.rs`: a batch of distinct names, in flight together;
//! - `client.rs`: one name's lookup over UDP, then TCP after TC=1;
//! - `outcome.rs`: [`Outcome`], the output lines and [`Summary`];
//! - `server.rs`: the server named by `-s` ([`ServerSpec`]).
use std::io;
use std::path::Path;

use hickory_proto::rr::Name;
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::time::Instant;

mod batch;
mod client;
mod input;
mod options;
mod outcome;
mod server;

use batch::{PROGRESS_MIN_NAMES, progress_bar, resolve_lines};
pub use input::BadLine;
use input::{parse_input, query_name};
pub use options::{
    AddressType, DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT, ResolveError,
    ResolveOptions,
};
use outcome::note;
pub use outcome::{Outcome, Summary, format_line};
pub use server::{DNS_PORT, ServerLookupError, ServerSpec, ServerSpecError};

/// The name of standard input and output in messages.
const STDIN: &str = "<stdin>";
const STDOUT: &str = "<stdout>";

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
