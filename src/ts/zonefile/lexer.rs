//! The lexer of RFC 1035 master files (§5.1): splits the text into entries (one line, or
//! several joined by parentheses), each a list of tokens with the line it starts on.
//!
//! Rules, as NSD and BIND read them: white space separates tokens; `;` starts a comment
//! that runs to the end of the line; `(` and `)` are separators that let an entry span
//! lines; `"` opens a quoted string in which white space, `;`, `(` and `)` are ordinary
//! characters and which may span lines; a backslash keeps the next character in the token
//! whatever it is (`\;`, `\"`, `\ `, `\(`) everywhere. Escapes are *not* decoded here:
//! a token keeps its backslashes, because a name (`a\.b` is one label) and a character
//! string decode them differently. An entry whose first line starts with white space
//! has a blank owner (the previous record's). A token is a slice of the
//! text (escapes kept, it is contiguous there): lexing allocates nothing a
//! token, and one entry's list of tokens is reused for the next.

/// One token of an entry: its raw text (escapes kept), whether it was quoted, and the
/// 1-based line it starts on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Token<'a> {
    /// The text between the separators (or between the quotes), backslashes kept.
    pub(super) text: &'a [u8],
    /// Written in double quotes (`""` is an empty quoted token).
    pub(super) quoted: bool,
    /// 1-based line the token starts on.
    pub(super) line: usize,
}

/// One entry: a directive or a record, possibly spanning lines.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MasterEntry<'a> {
    /// 1-based line the entry starts on.
    pub(super) first_line: usize,
    /// 1-based line the entry ends on.
    pub(super) last_line: usize,
    /// The entry's first line starts with white space: its owner is the previous one's.
    pub(super) blank_owner: bool,
    /// The tokens, at least one.
    pub(super) tokens: Vec<Token<'a>>,
}

/// A lexical error: the line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LexError {
    /// 1-based line.
    pub(super) line: usize,
    /// What is wrong.
    pub(super) msg: String,
}

/// Splits `text` into entries; lines with no token (blank, comment only) make none.
///
/// # Errors
/// A `)` with no `(` open, a quoted string or a parenthesis left open at the end of
/// the text, a backslash ending the text.
#[cfg(test)]
pub(super) fn entries(text: &[u8]) -> Result<Vec<MasterEntry<'_>>, LexError> {
    let mut all = Vec::new();
    each_entry(text, |e| {
        all.push(e.clone());
        Ok(())
    })?;
    Ok(all)
}

/// Hands each entry of `text` to `f` as soon as it is read (a big file's
/// tokens never sit in memory together), in file order; the first error,
/// the lexer's or `f`'s, ends the reading.
///
/// # Errors
/// As [`entries`], or `f`'s.
pub(super) fn each_entry<'a>(
    text: &'a [u8],
    mut f: impl FnMut(&MasterEntry<'a>) -> Result<(), LexError>,
) -> Result<(), LexError> {
    let mut lexer = Lexer {
        text,
        // An SOA's entry holds about ten tokens: room for them at once.
        tokens: Vec::with_capacity(16),
        word: None,
        line: 1,
        first_line: 1,
        blank_owner: false,
    };
    let mut depth = 0usize;
    let mut opened = 0;
    let mut at = 0;
    let mut line_start = true;
    while let Some(&b) = text.get(at) {
        if line_start && depth == 0 {
            lexer.first_line = lexer.line;
            lexer.blank_owner = b == b' ' || b == b'\t';
            // Most lines are words and blanks alone: read in one pass.
            match lexer.simple_line(at) {
                Some(end) => {
                    lexer.end_entry(&mut f)?;
                    lexer.line += 1;
                    at = end + 1;
                    continue;
                }
                // Read byte by byte below, from its start.
                None => lexer.tokens.clear(),
            }
        }
        // A bare CR (not before an LF) ends a line, as NSD and BIND read it
        // (an old Mac file); before an LF it is white space (CRLF).
        let b = if b == b'\r' && text.get(at + 1) != Some(&b'\n') {
            b'\n'
        } else {
            b
        };
        line_start = false;
        match b {
            0 => return Err(nul(lexer.line)),
            b'\n' => {
                lexer.end_word(at);
                if depth == 0 {
                    lexer.end_entry(&mut f)?;
                }
                lexer.line += 1;
                line_start = true;
            }
            b' ' | b'\t' | b'\r' => lexer.end_word(at),
            b';' => {
                lexer.end_word(at);
                while text.get(at + 1).is_some() && !ends_line(text, at + 1) {
                    at += 1;
                }
            }
            b'(' => {
                lexer.end_word(at);
                if depth == 0 {
                    opened = lexer.line;
                }
                depth += 1;
            }
            b')' => {
                lexer.end_word(at);
                depth = depth.checked_sub(1).ok_or_else(|| LexError {
                    line: lexer.line,
                    msg: "')' with no '(' open".into(),
                })?;
            }
            b'"' => {
                lexer.end_word(at);
                let start = lexer.line;
                let from = at + 1;
                at += 1;
                loop {
                    match text.get(at) {
                        None => {
                            return Err(LexError {
                                line: start,
                                msg: "quoted string not closed".into(),
                            });
                        }
                        Some(b'"') => break,
                        Some(0) => return Err(nul(lexer.line)),
                        Some(b'\\') => {
                            escaped(text, at, &mut lexer.line)?;
                            at += 1;
                        }
                        Some(_) => {
                            if ends_line(text, at) {
                                lexer.line += 1;
                            }
                        }
                    }
                    at += 1;
                }
                lexer.tokens.push(Token {
                    text: &text[from..at],
                    quoted: true,
                    line: start,
                });
            }
            b'\\' => {
                lexer.push(at);
                escaped(text, at, &mut lexer.line)?;
                at += 1;
            }
            _ => {
                lexer.push(at);
                // The rest of the word at once: the bytes up to the next
                // one with a meaning of its own (most of a file's bytes).
                while text.get(at + 1).is_some_and(|&c| !SPECIAL[usize::from(c)]) {
                    at += 1;
                }
            }
        }
        at += 1;
    }
    lexer.end_word(at);
    if depth > 0 {
        return Err(LexError {
            line: opened,
            msg: "parenthesis opened here is not closed at the end of the file".into(),
        });
    }
    lexer.end_entry(&mut f)
}

/// The bytes that end an unquoted word or mean something inside it: white
/// space and line ends, `;`, parentheses, `"`, the backslash and NUL.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let special = b" \t\r\n;()\"\\\0";
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

/// [`Lexer::simple_line`]'s classes of bytes: a word's, white space, the
/// LF, and any other ([`SPECIAL`] but for white space and LF: the line is
/// read byte by byte then).
const WORD: u8 = 0;
const BLANK: u8 = 1;
const LF: u8 = 2;
const OTHER: u8 = 3;
const CLASS: [u8; 256] = {
    let mut t = [WORD; 256];
    let mut i = 0;
    while i < 256 {
        if SPECIAL[i] {
            t[i] = OTHER;
        }
        i += 1;
    }
    t[b' ' as usize] = BLANK;
    t[b'\t' as usize] = BLANK;
    t[b'\n' as usize] = LF;
    t
};

/// Whether the byte at `at` ends a line: an LF, or a CR not before an LF.
fn ends_line(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        Some(b'\n') => true,
        Some(b'\r') => text.get(at + 1) != Some(&b'\n'),
        _ => false,
    }
}

/// The byte a backslash at `at` escapes, `line` counted on past it when it
/// ends a line; an error for a backslash at the end of the file or before
/// a NUL.
fn escaped(text: &[u8], at: usize, line: &mut usize) -> Result<u8, LexError> {
    let Some(&next) = text.get(at + 1) else {
        return Err(LexError {
            line: *line,
            msg: "backslash at the end of the file".into(),
        });
    };
    if next == 0 {
        return Err(nul(*line));
    }
    if ends_line(text, at + 1) {
        *line += 1;
    }
    Ok(next)
}

/// A NUL byte in the text: refused, as BIND and Knot refuse it (NSD would
/// cut the line there); `\000` writes one in a name or a string.
fn nul(line: usize) -> LexError {
    LexError {
        line,
        msg: "a NUL byte (write \\000 for a zero byte in data)".into(),
    }
}

/// The lexer's state between characters.
struct Lexer<'a> {
    text: &'a [u8],
    tokens: Vec<Token<'a>>,
    /// The unquoted word being read: where it starts in `text`, its line.
    word: Option<(usize, usize)>,
    line: usize,
    first_line: usize,
    blank_owner: bool,
}

impl<'a> Lexer<'a> {
    /// Reads the line starting at `start` (no parenthesis open, no token
    /// yet) when it holds words and blanks alone and ends with an LF: its
    /// words pushed as tokens, and where its LF is. `None` for any other
    /// (a comment, a quote, a parenthesis, a backslash, a CR, a NUL, the
    /// end of the text), some of its words maybe pushed: the caller clears
    /// them and reads the line byte by byte.
    fn simple_line(&mut self, start: usize) -> Option<usize> {
        let text = self.text;
        let mut at = start;
        loop {
            let mut c = *text.get(at)?;
            while CLASS[usize::from(c)] == BLANK {
                at += 1;
                c = *text.get(at)?;
            }
            if CLASS[usize::from(c)] == LF {
                return Some(at);
            }
            let from = at;
            while CLASS[usize::from(c)] == WORD {
                at += 1;
                c = *text.get(at)?;
            }
            if CLASS[usize::from(c)] == OTHER {
                return None;
            }
            self.tokens.push(Token {
                text: &text[from..at],
                quoted: false,
                line: self.line,
            });
        }
    }

    /// The byte at `at` belongs to the word being read (starts one).
    fn push(&mut self, at: usize) {
        let line = self.line;
        self.word.get_or_insert((at, line));
    }

    /// Ends the word being read, if any, before the byte at `at`.
    fn end_word(&mut self, at: usize) {
        if let Some((from, line)) = self.word.take() {
            self.tokens.push(Token {
                text: &self.text[from..at],
                quoted: false,
                line,
            });
        }
    }

    /// Hands the entry that ends here to `f`, if it has a token; its list
    /// of tokens is then emptied for the next entry.
    fn end_entry(
        &mut self,
        f: &mut impl FnMut(&MasterEntry<'a>) -> Result<(), LexError>,
    ) -> Result<(), LexError> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let entry = MasterEntry {
            first_line: self.first_line,
            last_line: self.line,
            blank_owner: self.blank_owner,
            tokens: std::mem::take(&mut self.tokens),
        };
        let result = f(&entry);
        self.tokens = entry.tokens;
        self.tokens.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entry: &MasterEntry) -> Vec<String> {
        entry
            .tokens
            .iter()
            .map(|t| {
                let s = String::from_utf8_lossy(t.text).into_owned();
                if t.quoted { format!("\"{s}\"") } else { s }
            })
            .collect()
    }

    #[test]
    fn entries_lines_and_blank_owners() {
        let all = entries(b"a IN SOA ( 1\n 2 ) ; c\n\n b \"q\nq\" x\nlast").unwrap();
        let spans: Vec<(usize, usize, bool)> = all
            .iter()
            .map(|e| (e.first_line, e.last_line, e.blank_owner))
            .collect();
        assert_eq!(spans, vec![(1, 2, false), (4, 5, true), (6, 6, false)]);
        assert_eq!(texts(&all[0]), vec!["a", "IN", "SOA", "1", "2"]);
        assert_eq!(texts(&all[1]), vec!["b", "\"q\nq\"", "x"]);
        assert_eq!(all[1].tokens[2].line, 5);
    }

    #[test]
    fn quotes_hide_separators_and_comments() {
        // The multi-line DKIM record as opendkim-genkey writes it.
        let text = b"k._domainkey IN TXT ( \"v=DKIM1; k=rsa; \"\n  \"p=MIGf(x)\" )  ; ----- DKIM\nnext A 1.2.3.4\n";
        let all = entries(text).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            texts(&all[0]),
            vec![
                "k._domainkey",
                "IN",
                "TXT",
                "\"v=DKIM1; k=rsa; \"",
                "\"p=MIGf(x)\""
            ]
        );
        assert_eq!(texts(&all[1]), vec!["next", "A", "1.2.3.4"]);
    }

    #[test]
    fn backslash_keeps_the_next_character_in_the_token() {
        let all = entries(b"a\\;b TXT a\\ b \"x\\\"y\" c\\(\n").unwrap();
        assert_eq!(
            texts(&all[0]),
            vec!["a\\;b", "TXT", "a\\ b", "\"x\\\"y\"", "c\\("]
        );
    }

    #[test]
    fn errors_carry_their_line() {
        let err = |t: &[u8]| entries(t).unwrap_err();
        assert_eq!(
            err(b"a A 1\nb ) A 1\n"),
            LexError {
                line: 2,
                msg: "')' with no '(' open".into()
            }
        );
        assert_eq!(err(b"a A 1\nb TXT \"open\n\n").line, 2);
        assert_eq!(
            err(b"a A 1\nx TXT ( \"a\"\n\"b\"\n"),
            LexError {
                line: 2,
                msg: "parenthesis opened here is not closed at the end of the file".into()
            }
        );
        assert_eq!(err(b"x TXT a\\").line, 1);
    }

    #[test]
    fn a_bare_cr_ends_a_line_as_nsd_and_bind_read_it() {
        // Two records, not one TXT of five strings.
        let all = entries(b"t TXT \"a\"\ru TXT \"b\"\n").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(texts(&all[0]), vec!["t", "TXT", "\"a\""]);
        assert_eq!(texts(&all[1]), vec!["u", "TXT", "\"b\""]);
        assert_eq!((all[1].first_line, all[1].blank_owner), (2, false));
        // A CR-only (old Mac) file, a comment ended by a CR, and a blank owner
        // after a CR; lines are counted at each CR as BIND counts them.
        let all = entries(b"$TTL 60 ; c\r@ A 1\r A 2\r\rb A 3\r").unwrap();
        assert_eq!(texts(&all[0]), vec!["$TTL", "60"]);
        assert_eq!(texts(&all[2]), vec!["A", "2"]);
        assert!(all[2].blank_owner);
        assert_eq!(all[3].first_line, 5);
        // A quoted string across a bare CR counts the line too.
        let all = entries(b"a TXT \"x\ry\"\rb A 1").unwrap();
        assert_eq!(all[1].first_line, 3);
    }

    #[test]
    fn a_nul_byte_is_refused_at_its_line() {
        for text in [
            &b"a A 1\nt TXT a\0b\n"[..],
            b"a A 1\nt TXT \"a\0b\"\n",
            b"a A 1\na\\\0 A 1\n",
            b"a A 1\r\na\0 A 1\n",
        ] {
            let err = entries(text).unwrap_err();
            assert_eq!(err.line, 2, "{text:?}");
            assert!(err.msg.starts_with("a NUL byte"), "{}", err.msg);
        }
    }

    /// Lines of words and blanks alone (read in one pass) and the others
    /// (read byte by byte) mixed: the same entries, lines and blank owners
    /// as the byte-by-byte reading gives each.
    #[test]
    fn simple_lines_read_as_the_others() {
        let text = b"$ORIGIN z.test.\n\n@ SOA ns1 h ( 1\n 2 3 4 5 )\n\tA 192.0.2.1 \n  \n\
            www\tA 192.0.2.2\nt TXT \"a b\"\nx A 1 ; c\n\tNS ns1\nlast A 2";
        let all = entries(text).unwrap();
        let got: Vec<(usize, usize, bool, Vec<String>)> = all
            .iter()
            .map(|e| (e.first_line, e.last_line, e.blank_owner, texts(e)))
            .collect();
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (1, 1, false, words(&["$ORIGIN", "z.test."])),
                (
                    3,
                    4,
                    false,
                    words(&["@", "SOA", "ns1", "h", "1", "2", "3", "4", "5"])
                ),
                (5, 5, true, words(&["A", "192.0.2.1"])),
                (7, 7, false, words(&["www", "A", "192.0.2.2"])),
                (8, 8, false, words(&["t", "TXT", "\"a b\""])),
                (9, 9, false, words(&["x", "A", "1"])),
                (10, 10, true, words(&["NS", "ns1"])),
                (11, 11, false, words(&["last", "A", "2"])),
            ]
        );
        assert_eq!(all[1].tokens[4].line, 3);
        assert_eq!(all[1].tokens[5].line, 4);
        // A NUL or a CR in a line of words is still the byte-by-byte reading's.
        assert_eq!(entries(b"a A 1\nb A\x002\n").unwrap_err().line, 2);
        let crlf = entries(b"a A 1\r\nb A 2\r\n").unwrap();
        assert_eq!(texts(&crlf[1]), vec!["b", "A", "2"]);
        assert_eq!(crlf[1].first_line, 2);
    }

    #[test]
    fn crlf_and_tabs_are_white_space() {
        let all = entries(b"a\tA 1.2.3.4\r\n\tAAAA ::1\r\n").unwrap();
        assert_eq!(texts(&all[0]), vec!["a", "A", "1.2.3.4"]);
        assert!(all[1].blank_owner);
        assert_eq!(texts(&all[1]), vec!["AAAA", "::1"]);
    }
}
