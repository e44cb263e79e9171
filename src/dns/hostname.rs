//! The hostname rules shared by PROJ tables (`ts::table`) and the batch
//! client's input (`resolve`): labels of letters, digits, `-` and `_`, a
//! `*` only as the whole first label, the RFC 1035 length limits, the case
//! kept as written.
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// The longest DNS label, in bytes.
const MAX_LABEL: usize = 63;

/// The longest DNS name in wire form, in bytes.
const MAX_NAME: usize = 255;

/// Parses a hostname (fully qualified, trailing `.` optional), keeping its case.
///
/// Labels are 1..=63 bytes of letters, digits, `-` and `_`; `*` may be the whole first
/// label; the name is at most 255 bytes in wire form.
///
/// # Errors
/// What is wrong, in a few words (`empty label`, `bad character ' '`).
pub fn parse_hostname(text: &str) -> Result<Name, String> {
    if text == "." {
        return Ok(Name::root());
    }
    let mut wire = [0u8; MAX_NAME];
    match plain_wire(text, &mut wire) {
        // Read from its wire form, which keeps the case and costs a fraction
        // of `Name::from_labels`, the biggest cost of loading a large table.
        Some(wire) => Name::read(&mut BinDecoder::new(wire)).map_err(|e| e.to_string()),
        // A wildcard, or something wrong: the careful path says what.
        None => check_hostname(text),
    }
}

/// The common case of [`parse_hostname`] in one pass over the bytes: labels
/// of letters, digits, `-` and `_` only, each 1..=63 bytes, written to
/// `wire` (zeroed) in wire form; the name with its root label. `None` for
/// anything else (a `*`, an empty or long label, another character, a long
/// name).
fn plain_wire<'w>(text: &str, wire: &'w mut [u8; MAX_NAME]) -> Option<&'w [u8]> {
    let body = text.strip_suffix('.').unwrap_or(text).as_bytes();
    // wire[start] is the length byte of the label being written.
    let mut start = 0;
    let mut at = 1;
    for &b in body {
        if b == b'.' {
            let len = at - start - 1;
            if len == 0 || len > MAX_LABEL {
                return None;
            }
            *wire.get_mut(start)? = len as u8;
            start = at;
            at += 1;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            *wire.get_mut(at)? = b;
            at += 1;
        } else {
            return None;
        }
    }
    let len = at - start - 1;
    if len == 0 || len > MAX_LABEL {
        return None;
    }
    *wire.get_mut(start)? = len as u8;
    // The root label (`wire` is zeroed) must fit too.
    wire.get(..=at)
}

/// [`parse_hostname`]'s careful path: every rule checked label by label in
/// order, so the error names the first problem.
fn check_hostname(text: &str) -> Result<Name, String> {
    let body = text.strip_suffix('.').unwrap_or(text);
    let labels: Vec<&str> = body.split('.').collect();
    let mut wire_len = 1; // the root label
    for (index, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!("label longer than {MAX_LABEL} bytes"));
        }
        if *label != "*" {
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(if bad == '*' {
                    "'*' is only allowed as the whole first label".into()
                } else {
                    format!("bad character {bad:?}")
                });
            }
        } else if index != 0 {
            return Err("'*' is only allowed as the whole first label".into());
        }
        wire_len += label.len() + 1;
    }
    if wire_len > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} bytes"));
    }
    // Raw bytes keep the case (string labels would be IDNA-lowercased).
    Name::from_labels(labels.iter().map(|label| label.as_bytes())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass path of `parse_hostname` takes only names the careful
    /// one accepts, and writes the same bytes, case kept, as the `Name` the
    /// careful one makes.
    #[test]
    fn the_one_pass_hostname_path_agrees_with_the_careful_one() {
        use hickory_proto::serialize::binary::BinEncodable;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 4096,
            ..Config::default()
        });
        // Short labels from a small alphabet (dots, stars and a non-ASCII
        // letter included), and long ones near the limits.
        let text = prop_oneof![
            "[a-zA-Z0-9_*.é -]{0,24}\\.?",
            "([a-z]{60,64}\\.){3,4}[a-z]{1,10}\\.?",
        ];
        runner
            .run(&text, |text| {
                let mut wire = [0u8; MAX_NAME];
                if let Some(fast) = plain_wire(&text, &mut wire) {
                    let careful = check_hostname(&text);
                    prop_assert!(careful.is_ok(), "{:?}: {:?}", text, careful);
                    let careful = careful.map_err(TestCaseError::fail)?.to_bytes();
                    prop_assert_eq!(Ok(fast), careful.as_deref().map_err(|_| ()), "{:?}", text);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn hostnames_keep_their_case_and_name_their_first_problem() {
        // cannot fail because the literal is a valid name.
        let n = parse_hostname("HoSt7.Example.COM").expect("a plain name");
        assert_eq!(n.to_string(), "HoSt7.Example.COM.");
        // cannot fail because the literal is a valid wildcard name.
        let wildcard = parse_hostname("*.w.example.com.").expect("a wildcard name");
        assert_eq!(wildcard.to_string(), "*.w.example.com.");
        for (text, why) in [
            ("a..b", "empty label"),
            ("a.*.b", "'*' is only allowed as the whole first label"),
            ("a*.b", "'*' is only allowed as the whole first label"),
            ("a b.c", "bad character ' '"),
            (
                &format!("{}.c", "x".repeat(64)),
                "label longer than 63 bytes",
            ),
            (&format!("{}c", "x.".repeat(127)), "longer than 255 bytes"),
        ] {
            assert_eq!(parse_hostname(text).unwrap_err(), why, "{text}");
        }
        let longest = format!("{}c", "x.".repeat(126));
        assert!(parse_hostname(&longest).is_ok(), "254 bytes in wire form");
    }
}
