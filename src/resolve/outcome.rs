//! What became of each name ([`Outcome`]), its output line
//! ([`format_line`]) and stderr note, and the counts of a run ([`Summary`]).
use std::net::IpAddr;
use std::time::Duration;

/// What the output says for a name without addresses.
const NOT_FOUND: &str = "Error:HOST NOT FOUND";

/// What became of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with A (or AAAA, as asked) records for the name (after any CNAME
    /// chain), in answer order.
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN, or NOERROR without records of the type asked (NODATA).
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

/// The output text for one name: one `name IP A` (or `name IP AAAA`) line per address, or
/// `name - Error:HOST NOT FOUND`; several lines are joined by `\n`, with no trailing
/// newline.
pub fn format_line(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Addresses(addrs) if !addrs.is_empty() => addrs
            .iter()
            .map(|a| {
                let rtype = if a.is_ipv4() { "A" } else { "AAAA" };
                format!("{name} {a} {rtype}")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => format!("{name} - {NOT_FOUND}"),
    }
}

/// The stderr note for a name that timed out or failed, `None` for the others (a bad
/// line is reported as it is read).
pub(super) fn note(name: &str, outcome: &Outcome, tries: u32) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            Outcome::Addresses(vec![std::net::Ipv4Addr::LOCALHOST.into()]),
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
}
