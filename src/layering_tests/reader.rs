//! The reader of the house's rules: each source file's code with comments
//! and literals blanked, the `crate::` and `super::` paths in it, the names
//! its `use` lines bring in, its test modules; the crate's files and the
//! arrows between its top-level modules.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Arrows between top-level modules, each with where it was seen (`file:line`).
pub(super) type Arrows = BTreeMap<(String, String), Vec<String>>;

/// Whether `c` may be part of an identifier.
pub(super) fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `src` with its comments and the insides of its string and character
/// literals replaced by spaces (newlines kept, so offsets keep their lines).
pub(super) fn code_only(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in out.iter_mut().take(to.min(b.len())).skip(from) {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let prev_ident = i > 0 && ident_byte(b[i - 1]);
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut j, mut depth) = (i, 0usize);
                while j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if !prev_ident || (i > 0 && b[i - 1] == b'b') => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let mut close = b"\"".to_vec();
                close.extend(std::iter::repeat_n(b'#', hashes));
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |n| start + n + close.len());
                blank(&mut out, start, end.saturating_sub(close.len()));
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j);
                i = j + 1;
            }
            b'\'' => {
                // A character literal, or a lifetime (left as it is).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 3..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|n| i + 3 + n)
                } else {
                    let len = match b.get(i + 1) {
                        Some(&c) if c >= 0xf0 => 4,
                        Some(&c) if c >= 0xe0 => 3,
                        Some(&c) if c >= 0xc0 => 2,
                        _ => 1,
                    };
                    (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i + 1, end);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The inline modules of `code` (`mod name { ... }`): name, and the span of
/// their braces.
pub(super) fn inline_modules(code: &[u8]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut braces: Vec<Option<usize>> = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if code[i..].starts_with(b"mod ") && (i == 0 || !ident_byte(code[i - 1])) {
            let name: Vec<u8> = code[i + 4..]
                .iter()
                .copied()
                .take_while(|&c| ident_byte(c))
                .collect();
            let after = i + 4 + name.len();
            let rest = code[after..].iter().position(|c| !c.is_ascii_whitespace());
            if let Some(n) = rest
                && code[after + n] == b'{'
            {
                open.push((after + n, String::from_utf8_lossy(&name).into_owned()));
                braces.push(Some(open.len() - 1));
                i = after + n + 1;
                continue;
            }
        }
        match code[i] {
            b'{' => braces.push(None),
            b'}' => {
                if let Some(Some(m)) = braces.pop() {
                    let (start, name) = open[m].clone();
                    found.push((name, start, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The identifier at `at` in `code`.
pub(super) fn ident_at(code: &[u8], at: usize) -> &str {
    let len = code[at..].iter().take_while(|&&c| ident_byte(c)).count();
    std::str::from_utf8(&code[at..at + len]).unwrap_or("")
}

/// Every module path (from the crate root) that a `crate::` or `super::`
/// path in `code` starts with, by offset, for a file whose module is `file_mod`.
pub(super) fn paths(code: &[u8], file_mod: &[String]) -> Vec<(usize, Vec<String>)> {
    let inline = inline_modules(code);
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let boundary = i == 0 || !ident_byte(code[i - 1]);
        let (base, mut at) = if boundary && code[i..].starts_with(b"crate::") {
            (Vec::new(), i + 7)
        } else if boundary && code[i..].starts_with(b"super::") {
            let mut module = file_mod.to_vec();
            module.extend(
                inline
                    .iter()
                    .filter(|(_, s, e)| *s < i && i < *e)
                    .map(|(n, _, _)| n.clone()),
            );
            let mut at = i;
            while code[at..].starts_with(b"super::") {
                module.pop();
                at += 7;
            }
            (module, at)
        } else {
            i += 1;
            continue;
        };
        let firsts: Vec<String> = if code.get(at) == Some(&b'{') {
            // A group: the first name of each item at its top level.
            let mut names = Vec::new();
            let (mut depth, mut item_start) = (0usize, true);
            at += 1;
            while at < code.len() {
                match code[at] {
                    b'{' => depth += 1,
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => item_start = true,
                    c if item_start && ident_byte(c) => {
                        names.push(ident_at(code, at).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
                at += 1;
            }
            names
        } else {
            vec![ident_at(code, at).to_owned()]
        };
        for name in firsts {
            let mut path = base.clone();
            if name != "self" {
                path.push(name);
            }
            found.push((i, path));
        }
        i = at.max(i + 1);
    }
    found
}

/// The module path of the file at `rel` (under src/): `ls/fast/mod.rs` is `ls::fast`.
pub(super) fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        match last.strip_suffix(".rs") {
            Some("mod" | "lib") | None => {}
            Some(stem) => parts.push(stem.to_owned()),
        }
    }
    parts
}

/// Every .rs file under `dir`.
pub(super) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules of the crate (src/'s files and folders).
pub(super) fn top_level(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_stem()?.to_string_lossy().into_owned();
            (p.is_dir() || p.extension().is_some_and(|x| x == "rs")).then_some(name)
        })
        .filter(|n| n != "lib" && n != "main")
        .collect()
}

/// The arrows between the top-level modules of the crate rooted at `src`.
pub(super) fn arrows(src: &Path) -> Arrows {
    let tops = top_level(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut arrows = Arrows::new();
    for file in files {
        let Ok(rel) = file.strip_prefix(src) else {
            continue;
        };
        if rel == Path::new("main.rs") || rel == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(rel);
        let Some(from) = module.first() else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let code = code_only(&text);
        for (at, path) in paths(&code, &module) {
            let Some(to) = path.first() else { continue };
            if to == from || !tops.contains(to) {
                continue;
            }
            let line = 1 + code[..at].iter().filter(|&&c| c == b'\n').count();
            arrows
                .entry((from.clone(), to.clone()))
                .or_default()
                .push(format!("src/{}:{line}", rel.display()));
        }
    }
    arrows
}

/// The test-only modules declared in `code` (`#[cfg(test)] mod name`): the
/// spans of the inline ones, the names of those in files of their own.
pub(super) fn test_modules(code: &[u8]) -> (Vec<(usize, usize)>, Vec<String>) {
    let inline = inline_modules(code);
    let (mut spans, mut files) = (Vec::new(), Vec::new());
    let attr = b"#[cfg(test)]";
    for at in (0..code.len()).filter(|&i| code[i..].starts_with(attr)) {
        let mut i = at + attr.len();
        let skip_space = |i: &mut usize| {
            while code.get(*i).is_some_and(u8::is_ascii_whitespace) {
                *i += 1;
            }
        };
        skip_space(&mut i);
        if code[i..].starts_with(b"pub") {
            while code.get(i).is_some_and(|&c| c != b' ') {
                i += 1;
            }
            skip_space(&mut i);
        }
        if !code[i..].starts_with(b"mod ") {
            continue;
        }
        let name = ident_at(code, i + 4).to_owned();
        let mut j = i + 4 + name.len();
        skip_space(&mut j);
        match code.get(j) {
            Some(b';') => files.push(name),
            Some(b'{') => spans.extend(
                inline
                    .iter()
                    .filter(|(_, s, _)| *s == j)
                    .map(|&(_, s, e)| (s, e)),
            ),
            _ => {}
        }
    }
    (spans, files)
}

/// One source file of the crate, read once.
pub(super) struct Source {
    /// Its path under src/.
    pub(super) rel: PathBuf,
    /// Its module path (`ls/fast/mod.rs` is `ls::fast`).
    pub(super) module: Vec<String>,
    /// Its text.
    pub(super) text: String,
    /// Its text with comments and literals blanked ([`code_only`]).
    pub(super) code: Vec<u8>,
    /// Whether it is test-only (declared `#[cfg(test)] mod x;`, or under one)
    /// or a fixture (`fixtures.rs`).
    pub(super) test_only: bool,
}

/// Every file of the crate rooted at `src` but main.rs.
pub(super) fn sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out: Vec<Source> = files
        .into_iter()
        .filter_map(|file| {
            let rel = file.strip_prefix(src).ok()?.to_path_buf();
            let text = std::fs::read_to_string(&file).ok()?;
            let module = module_of(&rel);
            let code = code_only(&text);
            Some(Source {
                rel,
                module,
                text,
                code,
                test_only: false,
            })
        })
        .filter(|s| s.rel != Path::new("main.rs"))
        .collect();
    let test_files: Vec<Vec<String>> = out
        .iter()
        .flat_map(|s| {
            test_modules(&s.code).1.into_iter().map(move |name| {
                let mut m = s.module.clone();
                m.push(name);
                m
            })
        })
        .collect();
    for s in &mut out {
        s.test_only = test_files.iter().any(|t| s.module.starts_with(t))
            || s.rel.file_name().is_some_and(|n| n == "fixtures.rs");
    }
    out
}

/// The 1-based line of offset `at` in `code`.
pub(super) fn line_of(code: &[u8], at: usize) -> usize {
    1 + code[..at].iter().filter(|&&c| c == b'\n').count()
}

/// What a name that a folder's `mod.rs` (or the crate root) brings into
/// scope stands for.
#[derive(Debug, PartialEq)]
pub(super) enum Name {
    /// Re-exported (or imported) from one of the folder's rooms.
    Room(String),
    /// Brought in from outside the folder, or not found.
    Elsewhere,
}

/// The names the `use` declarations at the top level of `code` (the file of
/// module `module`, whose rooms are `rooms`) bring into scope, each with the
/// room of `module` it comes from, if any.
pub(super) fn uses(
    code: &[u8],
    module: &[String],
    rooms: &BTreeSet<String>,
) -> BTreeMap<String, Name> {
    let inline = inline_modules(code);
    let mut found = BTreeMap::new();
    let text = String::from_utf8_lossy(code);
    let mut i = 0;
    while let Some(n) = text[i..].find("use ") {
        let at = i + n;
        i = at + 4;
        if at > 0 && ident_byte(code[at - 1]) || inline.iter().any(|&(_, s, e)| s < at && at < e) {
            continue;
        }
        let Some(end) = text[at..].find(';') else {
            break;
        };
        let tree = text[at + 4..at + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace(" as ", "@")
            .replace(' ', "");
        let mut leaves = Vec::new();
        expand(&tree, Vec::new(), &mut leaves);
        for (name, path) in leaves {
            let absolute = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("self") => [module, &path[1..]].concat(),
                Some("super") => {
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    let base = &module[..module.len().saturating_sub(ups)];
                    [base, &path[ups..]].concat()
                }
                Some(first) if rooms.contains(first) => [module, &path[..]].concat(),
                _ => Vec::new(),
            };
            let room = absolute
                .strip_prefix(module)
                .and_then(|rest| rest.first())
                .filter(|r| rooms.contains(*r));
            let what = match room {
                Some(r) => Name::Room(r.clone()),
                None => Name::Elsewhere,
            };
            found.insert(name, what);
        }
    }
    found
}

/// The leaves of a `use` tree written without white space (`a::{b, c::d as
/// e}`), each as (the name it brings into scope, its path), under `prefix`.
pub(super) fn expand(tree: &str, prefix: Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let mut path = prefix;
        path.extend(
            tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0usize, 0);
        for (j, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    expand(&inner[start..j], path.clone(), out);
                    start = j + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], path, out);
        return;
    }
    let (tree, alias) = match tree.split_once('@') {
        Some((t, a)) => (t, Some(a)),
        None => (tree, None),
    };
    let mut path = prefix;
    path.extend(
        tree.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    if path.last().is_some_and(|l| l == "self") {
        path.pop();
    }
    let Some(last) = path.last().cloned() else {
        return;
    };
    if last == "*" {
        return;
    }
    out.push((alias.unwrap_or(&last).to_owned(), path));
}

/// Whether `code` defines an item called `name` at its top level.
pub(super) fn defines(code: &[u8], name: &str) -> bool {
    let text = String::from_utf8_lossy(code);
    let inline = inline_modules(code);
    [
        "fn",
        "struct",
        "enum",
        "const",
        "static",
        "trait",
        "type",
        "union",
        "macro_rules!",
    ]
    .iter()
    .any(|kw| {
        let needle = format!("{kw} {name}");
        text.match_indices(&needle).any(|(at, _)| {
            let end = at + needle.len();
            (at == 0 || !ident_byte(code[at - 1]))
                && code.get(end).is_none_or(|&c| !ident_byte(c))
                && !inline.iter().any(|&(_, s, e)| s < at && at < e)
        })
    })
}

#[test]
fn the_use_reader_sees_groups_aliases_and_rooms() {
    let mut leaves = Vec::new();
    expand(
        "self::hash::{Hasher,x::{Y@Z,self}},",
        Vec::new(),
        &mut leaves,
    );
    let names: Vec<&str> = leaves.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Hasher", "Z", "x"]);
    assert_eq!(leaves[1].1, ["self", "hash", "x", "Y"]);
    let code = code_only(
        "pub use balancer::{Balancer, Admission as Adm};\nuse crate::dns::Name;\npub struct Own;\n",
    );
    let module = vec!["ls".to_owned()];
    let rooms: BTreeSet<String> = ["balancer".to_owned()].into();
    let found = uses(&code, &module, &rooms);
    assert_eq!(found.get("Balancer"), Some(&Name::Room("balancer".into())));
    assert_eq!(found.get("Adm"), Some(&Name::Room("balancer".into())));
    assert_eq!(found.get("Name"), Some(&Name::Elsewhere));
    assert!(defines(&code, "Own") && !defines(&code, "Ow"));
}

#[test]
fn the_reader_sees_paths_in_code_and_not_in_comments_or_strings() {
    let src = r##"
use crate::dns::{self, Rr};
use crate::{config::LsConfig, server};
// use crate::ts::Commented;
/// [`crate::ls::Documented`]
fn f() { let _ = "crate::ts::InAString"; let _ = r#"crate::ts::Raw"#; let _ = '"'; crate::guard::acl::allowed(); }
mod tests {
    use super::super::metrics;
    use super::*;
}
"##;
    let code = code_only(src);
    let module = vec!["ls".to_owned(), "state".to_owned()];
    let tops: Vec<String> = paths(&code, &module)
        .into_iter()
        .filter_map(|(_, p)| p.first().cloned())
        .collect();
    assert_eq!(
        tops,
        ["dns", "config", "server", "guard", "ls", "ls"],
        "{}",
        String::from_utf8_lossy(&code)
    );
    let all: Vec<Vec<String>> = paths(&code, &module).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        all[4],
        ["ls", "metrics"],
        "super::super:: from an inline module"
    );
    assert_eq!(
        all[5][..2],
        ["ls", "state"],
        "super:: from an inline module"
    );
}
