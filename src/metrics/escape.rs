//! Text escaped for the listener's two text formats: HTML (the status page's
//! content and attribute values) and Prometheus label values; one loop, a table
//! of replacements each.

/// `s` with each character `by` names replaced by its text.
fn escaped(s: &str, by: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match by(c) {
            Some(text) => out.push_str(text),
            None => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML content and attribute values.
pub(super) fn html(s: &str) -> String {
    escaped(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

/// Escapes a Prometheus label value: backslash, double quote and newline.
pub(super) fn label(v: &str) -> String {
    escaped(v, |c| match c {
        '\\' => Some("\\\\"),
        '"' => Some("\\\""),
        '\n' => Some("\\n"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{html, label};

    #[test]
    fn html_escapes_the_five_and_keeps_the_rest() {
        assert_eq!(
            html(r#"<a href="x">Tom & Jerry's</a> é"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt; é"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
        assert_eq!(label("ts-1.é"), "ts-1.é");
    }
}
