//! The batch's input: one hostname a line, blank lines and `#` comments
//! skipped, a line that is not a hostname kept in its place and reported as
//! a [`BadLine`].
use std::fmt;

use hickory_proto::rr::Name;

use crate::dns::parse_hostname;

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

/// One input line with a name: `(hostname as written, name to query or why it is
/// not a hostname)`.
pub(super) type InputLine = (String, Result<Name, String>);

/// Splits the input into its lines with a name, in order, skipping blank lines and
/// `#` comments; a line that is not a hostname is kept (it is written as not found)
/// and also reported, naming `file:line`.
pub(super) fn parse_input(bytes: &[u8], file: &str) -> (Vec<InputLine>, Vec<BadLine>) {
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
pub(super) fn query_name(text: &str) -> Result<Name, String> {
    if text.is_empty() || text == "." {
        return Err("not a hostname".into());
    }
    if text == "*" || text.starts_with("*.") {
        return Err("a wildcard is not a hostname".into());
    }
    parse_hostname(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dns::fixtures::name;

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
}
