//! The house's checks over the read sources: the arrows between the rooms
//! of each folder and those running back up to a `mod.rs`, the circles
//! among them, the files over the code-line limit, the public type names
//! defined twice.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::MAX_CODE_LINES;
use super::reader::{
    Arrows, Name, Source, arrows, code_only, defines, ident_at, ident_byte, line_of, paths,
    sources, test_modules, uses,
};

/// The arrows of the crate's code, test code and fixtures aside: between the
/// rooms of each folder (`ls::balancer` to `ls::notify`), and from a room to
/// an item defined in its folder's `mod.rs` (`ls::fast::worker` to
/// `ls::fast::Worker`), which runs back up.
pub(super) struct Rooms {
    /// Arrows between the rooms of one folder, at every depth.
    pub(super) siblings: Arrows,
    /// Arrows from a room to an item of its folder's floor.
    pub(super) back_up: Arrows,
}

/// The [`Rooms`] of the crate whose files are `sources`.
pub(super) fn rooms(sources: &[Source]) -> Rooms {
    let all: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let rooms_of = |folder: &[String]| -> BTreeSet<String> {
        all.iter()
            .filter(|m| m.len() == folder.len() + 1 && m.starts_with(folder))
            .filter_map(|m| m.last().cloned())
            .collect()
    };
    let mut floors: BTreeMap<Vec<String>, BTreeMap<String, Name>> = BTreeMap::new();
    let mut floor_code: BTreeMap<Vec<String>, &[u8]> = BTreeMap::new();
    for s in sources {
        let rooms = rooms_of(&s.module);
        if rooms.is_empty() {
            continue;
        }
        let (spans, _) = test_modules(&s.code);
        let mut code = s.code.clone();
        for (from, to) in spans {
            code[from..to].iter_mut().for_each(|c| *c = b' ');
        }
        floors.insert(s.module.clone(), uses(&code, &s.module, &rooms));
        floor_code.insert(s.module.clone(), &s.code);
    }
    let mut siblings = Arrows::new();
    let mut back_up = Arrows::new();
    for s in sources.iter().filter(|s| !s.test_only) {
        let (test_spans, _) = test_modules(&s.code);
        for (at, path) in paths(&s.code, &s.module) {
            if test_spans.iter().any(|&(a, e)| a < at && at < e) {
                continue;
            }
            let module = &s.module;
            let common = module.iter().zip(&path).take_while(|(a, b)| a == b).count();
            let (Some(from), Some(to)) = (module.get(common), path.get(common)) else {
                continue;
            };
            if to.is_empty() || to == "*" {
                continue;
            }
            let folder = &module[..common];
            let name = |m: &str| {
                if folder.is_empty() {
                    m.to_owned()
                } else {
                    format!("{}::{m}", folder.join("::"))
                }
            };
            let at = format!("src/{}:{}", s.rel.display(), line_of(&s.code, at));
            let room = if rooms_of(folder).contains(to) {
                Some(to.clone())
            } else {
                match floors.get(folder).and_then(|f| f.get(to)) {
                    Some(Name::Room(r)) => Some(r.clone()),
                    Some(Name::Elsewhere) => None,
                    None => {
                        if floor_code.get(folder).is_some_and(|c| defines(c, to)) {
                            back_up
                                .entry((name(from), name(to)))
                                .or_default()
                                .push(at.clone());
                        }
                        None
                    }
                }
            };
            if let Some(room) = room.filter(|r| r != from) {
                siblings
                    .entry((name(from), name(&room)))
                    .or_default()
                    .push(at);
            }
        }
    }
    Rooms { siblings, back_up }
}

/// The circles among the rooms of each folder, any length: each as its rooms
/// and every arrow between them.
pub(super) fn circles_in(arrows: &Arrows) -> Vec<(Vec<String>, Vec<String>)> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (f, t) in arrows.keys() {
        next.entry(f).or_default().push(t);
    }
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for &m in next.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|&n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (&n, r) in &reached {
        if done.contains(n) || !r.contains(n) {
            continue;
        }
        let members: Vec<String> = r
            .iter()
            .filter(|m| reached.get(*m).is_some_and(|back| back.contains(n)))
            .map(|m| (*m).to_owned())
            .collect();
        done.extend(members.iter().cloned());
        let lines = arrows
            .iter()
            .filter(|((f, t), _)| members.contains(f) && members.contains(t))
            .map(|((f, t), at)| format!("  {f} -> {t}: {}", at.join(", ")))
            .collect();
        out.push((members, lines));
    }
    out
}

/// The code lines (neither blank nor comment) of `text` before its first
/// `#[cfg(test)]` module, with `code` its [`code_only`] form.
pub(super) fn code_lines(text: &str, code: &[u8]) -> usize {
    let end = test_modules(code)
        .0
        .first()
        .map_or(code.len(), |&(start, _)| {
            code[..start]
                .windows(12)
                .rposition(|w| w == b"#[cfg(test)]")
                .unwrap_or(start)
        });
    let code = String::from_utf8_lossy(&code[..end]);
    text.lines()
        .zip(code.lines())
        .filter(|(t, c)| {
            let t = t.trim();
            !t.is_empty()
                && (!c.trim().is_empty()
                    || !(t.starts_with("//") || t.starts_with("/*") || t.starts_with('*')))
        })
        .count()
}

/// The files of `sources` over [`MAX_CODE_LINES`] code lines, each as its
/// path and count.
pub(super) fn long_files(sources: &[Source]) -> Vec<(String, usize)> {
    sources
        .iter()
        .filter(|s| !s.test_only)
        .map(|s| {
            (
                format!("src/{}", s.rel.display()),
                code_lines(&s.text, &s.code),
            )
        })
        .filter(|&(_, n)| n > MAX_CODE_LINES)
        .collect()
}

/// The public type names (`pub struct/enum/trait/type/union`, any
/// visibility) defined more than once outside test code, each with where.
pub(super) fn duplicate_types(sources: &[Source]) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in sources.iter().filter(|s| !s.test_only) {
        let (spans, _) = test_modules(&s.code);
        let code = &s.code;
        for at in (0..code.len()).filter(|&i| code[i..].starts_with(b"pub")) {
            if (at > 0 && ident_byte(code[at - 1])) || spans.iter().any(|&(a, e)| a < at && at < e)
            {
                continue;
            }
            let mut i = at + 3;
            if code.get(i) == Some(&b'(') {
                match code[i..].iter().position(|&c| c == b')') {
                    Some(n) => i += n + 1,
                    None => continue,
                }
            }
            let ws = code[i..]
                .iter()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
            if ws == 0 {
                continue;
            }
            i += ws;
            let kw = ident_at(code, i);
            if !matches!(kw, "struct" | "enum" | "trait" | "type" | "union") {
                continue;
            }
            i += kw.len();
            i += code[i..]
                .iter()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
            let name = ident_at(code, i);
            if name.is_empty() {
                continue;
            }
            seen.entry(name.to_owned()).or_default().push(format!(
                "src/{}:{}",
                s.rel.display(),
                line_of(code, at)
            ));
        }
    }
    seen.retain(|_, at| at.len() > 1);
    seen
}

/// The crate's sources, read once per test.
pub(super) fn house_sources() -> Vec<Source> {
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// Every top-level module `arrows` names.
pub(super) fn top_level_names(arrows: &Arrows) -> Vec<&str> {
    arrows
        .keys()
        .flat_map(|(f, t)| [f.as_str(), t.as_str()])
        .collect()
}

/// The crate's arrows, read once per test.
pub(super) fn house() -> Arrows {
    arrows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The arrows from any of `from` to any of `to`, one line each.
pub(super) fn offending(arrows: &Arrows, from: &[&str], to: &[&str]) -> Vec<String> {
    arrows
        .iter()
        .filter(|((f, t), _)| from.contains(&f.as_str()) && to.contains(&t.as_str()))
        .map(|((f, t), at)| format!("{f} -> {t}: {}", at.join(", ")))
        .collect()
}

/// The pairs of `arrows` that run both ways, with where each arrow was seen.
pub(super) fn circles(arrows: &Arrows) -> Vec<String> {
    arrows
        .iter()
        .filter(|((f, t), _)| f < t)
        .filter_map(|((f, t), at)| {
            let back = arrows.get(&(t.clone(), f.clone()))?;
            Some(format!(
                "{f} -> {t}: {}\n{t} -> {f}: {}",
                at.join(", "),
                back.join(", ")
            ))
        })
        .collect()
}

#[test]
fn code_lines_leave_out_blanks_comments_and_the_test_module() {
    let text = "//! Header.\n\nfn a() {}\n/* block\n * more */\nfn b() {} // trailing\n#[cfg(test)]\nmod tests {\n    fn c() {}\n}\n";
    assert_eq!(code_lines(text, &code_only(text)), 2);
}
