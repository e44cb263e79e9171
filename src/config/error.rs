//! [`ConfigError`], and turning toml's parse errors into messages that name the key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::source_map::{SourceMap, display_path};
use super::{
    CheckKind, Denial, DnssecAlgorithm, DnstapMessage, KeyAlgorithm, Layout, OnMiss, OnTimeout,
    Order, RuleTransport, Select, Strategy,
};

/// A typed problem with a config file.
///
/// Displays as `file:line: what is wrong` when the line is known, else `file: what is wrong`
/// (or just `what is wrong` when the file is unknown, e.g. for a config built in code). The
/// message always names the key, e.g. `ls.strategy: expected one of race, hedge, sequential,
/// got "fast"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}", located(file, None, msg))]
    Io {
        /// The file that was read.
        file: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// The file is not valid TOML, or does not fit the schema (unknown key, wrong type,
    /// bad enum value, bad address, network, DNS name or probe question).
    #[error("{}", located(file, *line, msg))]
    Parse {
        /// The file that was parsed.
        file: PathBuf,
        /// The 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// The file parsed but a value breaks a rule (duplicate name, out-of-range number, two
    /// listeners on one address, ...).
    #[error("{}", located(file, *line, msg))]
    Invalid {
        /// The file the config came from (empty for a config built in code).
        file: PathBuf,
        /// The 1-based line of the offending key, when it could be found.
        line: Option<usize>,
        /// What is wrong, naming the key.
        msg: String,
    },
}

impl ConfigError {
    /// The file the problem is in (empty when unknown).
    pub fn file(&self) -> &Path {
        match self {
            Self::Io { file, .. } | Self::Parse { file, .. } | Self::Invalid { file, .. } => file,
        }
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Io { .. } => None,
            Self::Parse { line, .. } | Self::Invalid { line, .. } => *line,
        }
    }

    /// What is wrong, without the `file:line: ` prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Io { msg, .. } | Self::Parse { msg, .. } | Self::Invalid { msg, .. } => msg,
        }
    }
}

/// Formats `file:line: msg`, leaving out the parts that are unknown.
fn located(file: &Path, line: Option<usize>, msg: &str) -> String {
    match (file.as_os_str().is_empty(), line) {
        (true, _) => msg.to_owned(),
        (false, Some(line)) => format!("{}:{line}: {msg}", file.display()),
        (false, None) => format!("{}: {msg}", file.display()),
    }
}

/// Turns a toml/serde error into a [`ConfigError::Parse`] naming the line and the key.
pub(super) fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let raw = err.message().trim().replace('\n', "; ");
    let (line, msg) = match err.span() {
        Some(span) => {
            let map = SourceMap::new(text);
            (Some(map.line_at(span.start)), describe(&map, span, &raw))
        }
        None => (None, raw),
    };
    ConfigError::Parse {
        file: path.to_path_buf(),
        line,
        msg,
    }
}

/// Rewrites serde's message for the value or key at `span` so it names the key.
fn describe(map: &SourceMap<'_>, span: Range<usize>, raw: &str) -> String {
    if raw == "duplicate key" {
        let key = map.text.get(span).unwrap_or_default();
        return format!("duplicate key '{key}'");
    }
    let Some(node) = map.node_at(span.start) else {
        return raw.to_owned();
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let parent = node.path.rsplit_once('.').map_or("", |(p, _)| p);
        let what = if node.table { "table" } else { "key" };
        let mut msg = format!("unknown {what} '{field}' {}", table_label(parent));
        let known = backticked(expected);
        match closest(field, &known) {
            Some(best) => msg.push_str(&format!(" (did you mean '{best}'?)")),
            None if !known.is_empty() => {
                msg.push_str(&format!("; valid keys: {}", known.join(", ")));
            }
            None => {}
        }
        return msg;
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("missing key '{field}' {}", table_label(&node.path));
    }
    let key = display_path(&node.path);
    if let Some((min, max)) = integer_range(&key, raw) {
        // serde names a Rust type ("expected u32"): say the range instead.
        let got = map.text.get(span).unwrap_or_default().trim();
        return format!("{key}: must be a whole number between {min} and {max}, got {got}");
    }
    if let Some(choices) = keyword_choices(&key) {
        // serde says "unknown variant `x`, expected ..." for a bad string and toml says
        // "wanted string or table" for a number or a bool: say the same for both.
        let got = map.text.get(span).unwrap_or_default().trim();
        return format!("{key}: expected one of {}, got {got}", choices.join(", "));
    }
    if key.is_empty() {
        raw.to_owned()
    } else {
        format!("{key}: {raw}")
    }
}

/// The range of the integer key `key` when serde's message `raw` is about
/// a value out of its type's range or not a number ("..., expected u32"):
/// a TTL's (RFC 2181), else the type's.
fn integer_range(key: &str, raw: &str) -> Option<(i128, i128)> {
    if !(raw.starts_with("invalid value: integer") || raw.starts_with("invalid type:")) {
        return None;
    }
    let ty = raw.rsplit_once(", expected ")?.1.trim();
    let (min, max): (i128, i128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    let ttl = key.ends_with("_ttl") || key == "ts.ttl";
    Some(if ttl {
        (0, super::values::MAX_TTL.into())
    } else {
        (min, max)
    })
}

/// The values allowed for the keyword key `key` (as shown to users), if it is one.
fn keyword_choices(key: &str) -> Option<Vec<&'static str>> {
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Option<Vec<&'static str>> {
        Some(all.iter().map(|&v| name(v)).collect())
    }
    match key {
        "ls.strategy" | "ls.pool.strategy" => names(Strategy::ALL, Strategy::as_str),
        "ls.order" | "ls.pool.order" => names(Order::ALL, Order::as_str),
        "ls.layout" | "ls.pool.layout" => names(Layout::ALL, Layout::as_str),
        "ls.on_timeout" | "ls.pool.on_timeout" => names(OnTimeout::ALL, OnTimeout::as_str),
        "ts.on_miss" => names(OnMiss::ALL, OnMiss::as_str),
        "ts.dnssec.algorithm" => names(DnssecAlgorithm::ALL, DnssecAlgorithm::as_str),
        "ts.dnssec.denial" => names(Denial::ALL, Denial::as_str),
        "ts.service.select" => names(Select::ALL, Select::as_str),
        "ts.service.check.kind" => names(CheckKind::ALL, CheckKind::as_str),
        "key.algorithm" => names(KeyAlgorithm::ALL, KeyAlgorithm::as_str),
        "ls.rule.match.transport" => names(RuleTransport::ALL, RuleTransport::as_str),
        "ls.dnstap.messages" | "ts.dnstap.messages" => {
            names(DnstapMessage::ALL, DnstapMessage::as_str)
        }
        _ => None,
    }
}

/// `in [ls]`, `in [[ts]]`, `at top level` for a table's indexed path.
fn table_label(path: &str) -> String {
    let name = display_path(path);
    if name.is_empty() {
        "at top level".to_owned()
    } else if path
        .rsplit('.')
        .next()
        .is_some_and(|seg| seg.parse::<usize>().is_ok())
    {
        format!("in [[{name}]]")
    } else {
        format!("in [{name}]")
    }
}

/// The words between backticks in serde's "expected ..." text.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The known key closest to a misspelt `word`, if it is close enough to be a typo.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
