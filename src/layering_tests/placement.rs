//! Where things are written: every folder has a `mod.rs` (no `x.rs` beside
//! a folder `x/`), and every inherent `impl` (one without `for`) is in the
//! file that defines its type (`struct`, `enum` or `union`, or the crate's
//! type-defining macros: [`TYPE_MACROS`]), so that one file holds a type
//! and all its own behaviour. Trait impls may be anywhere. Test code and
//! test-only files are left out of both.
use std::collections::BTreeSet;
use std::path::Path;

use super::reader::{Source, ident_at, ident_byte, line_of, test_modules};

/// The crate's macros whose input starts with the name of the type they
/// define, after its doc and attributes (`keyword_enum! { Name, default A
/// { .. } }`: a `config.toml` keyword enum).
const TYPE_MACROS: &[&str] = &["keyword_enum"];

/// The folders holding code (not test-only files only) without a `mod.rs`,
/// as `src/x/`, with the `src/x.rs` beside it when there is one.
pub(super) fn folders_without_mod_rs(sources: &[Source]) -> Vec<String> {
    let all: BTreeSet<&Path> = sources.iter().map(|s| s.rel.as_path()).collect();
    let folders: BTreeSet<&Path> = sources
        .iter()
        .filter(|s| !s.test_only)
        .filter_map(|s| s.rel.parent())
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    folders
        .into_iter()
        .filter(|d| !all.contains(d.join("mod.rs").as_path()))
        .map(|d| {
            let beside = d.with_extension("rs");
            if all.contains(beside.as_path()) {
                format!("src/{}/ (src/{} beside it)", d.display(), beside.display())
            } else {
                format!("src/{}/", d.display())
            }
        })
        .collect()
}

/// The inherent impls (`impl<..> T {`, no `for`, the first word of its
/// line) outside test code whose file defines no `struct`, `enum` or
/// `union` `T`: each as (file under src/, `T`, `file:line`).
pub(super) fn impls_away_from_their_type(sources: &[Source]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in sources.iter().filter(|s| !s.test_only) {
        let code = &s.code;
        let (spans, _) = test_modules(code);
        let mut at = 0;
        for line in code.split(|&c| c == b'\n') {
            let start = at;
            at += line.len() + 1;
            let indent = line.iter().take_while(|c| c.is_ascii_whitespace()).count();
            let i = start + indent;
            if ident_at(code, i) != "impl" || spans.iter().any(|&(a, e)| a < i && i < e) {
                continue;
            }
            let Some(name) = inherent_type(code, i + 4) else {
                continue;
            };
            if !defines_type(code, name) {
                let file = s.rel.display().to_string();
                let line = format!("src/{file}:{}", line_of(code, i));
                out.push((file, name.to_owned(), line));
            }
        }
    }
    out
}

/// The type of the impl whose header starts at `i` (just past `impl`), if
/// it is an inherent one: its path's last segment, generics aside.
fn inherent_type(code: &[u8], mut i: usize) -> Option<&str> {
    if code.get(i) == Some(&b'<') {
        i = past_angles(code, i)?;
    }
    let rest = code.get(i..)?;
    let end = rest.iter().position(|&c| c == b'{' || c == b';')?;
    let header = std::str::from_utf8(rest.get(..end)?).ok()?;
    let mut words = header.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    if words.any(|w| w == "for") {
        return None;
    }
    // The type's path ends at its generics, or at a `where` on a line of its own.
    let path = header
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '<')
        .next()?;
    let name = path.rsplit("::").next()?;
    let ok = !name.is_empty() && name.bytes().all(ident_byte);
    ok.then_some(name)
}

/// Just past the `<…>` opening at `i`, its nesting counted (a `->` inside,
/// as in `F: Fn() -> T`, is no closing bracket).
fn past_angles(code: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match code.get(i)? {
            b'<' => depth += 1,
            b'>' if i > 0 && code.get(i - 1) == Some(&b'-') => {}
            b'>' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Whether `code` defines a `struct`, `enum` or `union` called `name`
/// (anywhere in the file), itself or through one of [`TYPE_MACROS`].
fn defines_type(code: &[u8], name: &str) -> bool {
    macro_types(code).any(|t| t == name)
        || ["struct", "enum", "union"].iter().any(|kw| {
            let needle = format!("{kw} {name}");
            let n = needle.len();
            (0..code.len().saturating_sub(n - 1)).any(|at| {
                code.get(at..at + n) == Some(needle.as_bytes())
                    && (at == 0 || !ident_byte(code[at - 1]))
                    && code.get(at + n).is_none_or(|&c| !ident_byte(c))
            })
        })
}

/// The types `code` defines through one of [`TYPE_MACROS`]: the first word
/// of each call's input, its attributes skipped.
fn macro_types(code: &[u8]) -> impl Iterator<Item = &str> {
    (0..code.len()).filter_map(move |at| {
        let name = ident_at(code, at);
        let starts = at == 0 || !ident_byte(code[at - 1]);
        if !starts || !TYPE_MACROS.contains(&name) {
            return None;
        }
        let mut i = at + name.len();
        (code.get(i) == Some(&b'!')).then_some(())?;
        i += 1;
        loop {
            while code.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
                i += 1;
            }
            match code.get(i)? {
                b'{' | b'(' | b'[' => i += 1,
                b'#' => i = past_brackets(code, i + 1)?,
                _ => break,
            }
        }
        let ty = ident_at(code, i);
        (!ty.is_empty()).then_some(ty)
    })
}

/// Just past the `[…]` opening at `i` (an attribute's), its nesting counted.
fn past_brackets(code: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match code.get(i)? {
            b'[' => depth += 1,
            b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::reader::{Source, code_only, module_of};
    use super::*;

    /// A made-up file `rel` holding `text`.
    fn file(rel: &str, text: &str) -> Source {
        Source {
            rel: PathBuf::from(rel),
            module: module_of(Path::new(rel)),
            text: text.to_owned(),
            code: code_only(text),
            test_only: false,
        }
    }

    #[test]
    fn a_folder_without_a_mod_rs_is_found() {
        let house = [
            file("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            file("a/mod.rs", "mod x;\n"),
            file("a/x.rs", ""),
            file("b.rs", "mod y;\n"),
            file("b/y.rs", ""),
            file("c/z.rs", ""),
        ];
        assert_eq!(
            folders_without_mod_rs(&house),
            ["src/b/ (src/b.rs beside it)", "src/c/"]
        );
        let mut test_only = file("t/case.rs", "");
        test_only.test_only = true;
        assert!(folders_without_mod_rs(&[file("t.rs", ""), test_only]).is_empty());
    }

    #[test]
    fn an_inherent_impl_away_from_its_type_is_found_and_trait_impls_are_free() {
        let house = [
            file(
                "w.rs",
                "pub struct Worker<T> { t: T }\n\
                 impl<T: Fn() -> u8> Worker<T> {\n    fn a(&self) {}\n}\n\
                 impl std::fmt::Debug for Other {\n}\n",
            ),
            file(
                "rounds.rs",
                "use super::w::Worker;\n// impl Commented {\n\
                 impl<F> Worker<F>\nwhere\n    F: Fn() -> u8,\n{\n    fn b(&self) {}\n}\n\
                 fn f(x: impl Iterator<Item = u8>) {}\n\
                 impl Clone for Worker<u8> {\n}\n\
                 #[cfg(test)]\nmod tests {\n    impl super::Worker<u8> {\n    }\n}\n",
            ),
            file("e.rs", "enum Kind { A }\nimpl Kind {\n}\n"),
            file(
                "k.rs",
                "keyword_enum! {\n    #[allow(dead_code)]\n    Mode, default A {\n        A = \"a\",\n    }\n}\n\
                 impl Mode {\n}\n",
            ),
            file("m.rs", "impl Mode {\n}\n"),
        ];
        let found = impls_away_from_their_type(&house);
        assert_eq!(
            found,
            [
                (
                    "rounds.rs".to_owned(),
                    "Worker".to_owned(),
                    "src/rounds.rs:3".to_owned()
                ),
                (
                    "m.rs".to_owned(),
                    "Mode".to_owned(),
                    "src/m.rs:1".to_owned()
                )
            ]
        );
    }
}
