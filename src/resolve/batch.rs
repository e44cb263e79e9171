//! One batch over the wire: each distinct name asked once (any case), at
//! most [`ResolveOptions::concurrency`] lookups in flight as tasks of one
//! `JoinSet`, outcomes put back in input order, the progress bar advanced by
//! input lines.
use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_proto::rr::{LowerName, Name};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;

use super::client::{Client, Lookup};
use super::options::{ResolveError, ResolveOptions};
use super::outcome::Outcome;

/// The outcomes of a batch, and whether the server was heard from at all.
#[derive(Debug)]
pub(super) struct Resolved {
    /// One per input line, in input order.
    pub(super) outcomes: Vec<Outcome>,
    /// Distinct names asked.
    pub(super) asked: usize,
    /// Distinct names the server answered (any rcode, or TC=1).
    pub(super) answered: usize,
}

impl Resolved {
    /// [`ResolveError::NoAnswer`] when names were asked and not one was answered.
    pub(super) fn check_heard(
        &self,
        server: SocketAddr,
        opts: &ResolveOptions,
    ) -> Result<(), ResolveError> {
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
pub(super) async fn resolve_lines(
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
pub(super) async fn lookup_all(
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
        qtype: opts.qtype,
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
pub(super) const PROGRESS_MIN_NAMES: usize = 100;

/// A progress bar on stderr counting input lines, or a hidden one.
pub(super) fn progress_bar(len: usize, show: bool) -> ProgressBar {
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
    use crate::resolve::input::query_name;
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use std::time::Duration;
    use tokio::net::UdpSocket;

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
        let ask = async |names: &[&str]| {
            resolve_lines(&lines_of(names), &opts, server, &bar)
                .await
                .unwrap()
        };
        let none = ask(&["silent1.example", "silent2.example"]).await;
        assert_eq!(none.outcomes, [Outcome::TimedOut, Outcome::TimedOut]);
        let err = none.check_heard(server, &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no answer from {server}: 2 names asked, not one answered in 1 try of 100 ms")
        );
        let one = ask(&["silent1.example", "a.example"]).await;
        assert_eq!(one.answered, 1);
        assert!(one.check_heard(server, &opts).is_ok());
        // Only bad lines: nothing was asked, nothing to complain about.
        let bad = ask(&["a..b"]).await;
        assert_eq!(bad.asked, 0);
        assert!(bad.check_heard(server, &opts).is_ok());
        task.abort();
    }
}
