//! The query rules (`[[ls.rule]]`) compiled for the door: [`RuleSet`], pure
//! (no sockets) and read-only but for its counters and the per-rule rate
//! buckets. docs/CONFIG.md (the LS) "Rules and dynamic blocks".
//!
//! Checking a query ([`RuleSet::judge`]) looks its name up once in the one
//! suffix table of every rule's `match.suffix` ([`table`]), then walks, in
//! file order, the rules whose suffix holds merged with the rules that name
//! no suffix, checking each one's other conditions on a [`QueryView`]; the
//! first whose conditions hold and that acts gives the [`RuleHit`]. Nothing is
//! allocated on the way. `allow` is a hit too (the door forwards as usual and
//! checks no further rule); a `rate` rule under its rate does not act (the
//! next rules are checked); `truncate` and `delay_ms` act on UDP only (on TCP,
//! DoT and DoH the rule does not apply, as dnsdist's `TCAction` and
//! `DelayAction` do not).
//!
//! # Layout
//! - `set`: [`RuleSet`], the rules compiled, and [`Act`] and [`RuleHit`];
//! - `view`: [`QueryView`], what the door reads of a query for the rules;
//! - `table`: the rules' suffix table;
//! - `answer`: the made-up answers of a hit ([`answer()`]): the
//!   question echoed, RA=0, AA as the rule says, an EDE (15, 16 or 17) when
//!   the client sent an OPT;
//! - `response`: the `[[ls.response_rule]]`s ([`ResponseRules`]), judged on a
//!   backend's answer before the cache keeps it;
//! - `tests/` (test-only): the rules on made-up queries and answers.
mod answer;
mod response;
mod set;
mod table;
#[cfg(test)]
mod tests;
mod view;

pub use answer::answer;
pub use response::{ResponseRules, ResponseVerdict, limit_ttls};
pub use set::{Act, RULE_LOG_INTERVAL, RULE_LOG_LINES, RuleHit, RuleSet};
pub use view::QueryView;
