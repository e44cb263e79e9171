//! Where each key of a `config.toml` text is, for the line numbers of [`super::ConfigError`].
//!
//! Indexed once per text, at its first look-up: every node by its path (a
//! hash map) and every line's start (binary search), so a file of 100,000
//! services finds each key's `file:line` in constant time, not by a scan of
//! the nodes and of the text. A config with no problem and no
//! `[[ts.service]]` looks nothing up and is never indexed (the index of a
//! `[[ts]]` of 100,000 zone files was a second and third parse of the text
//! and a path string a file: 7 % of a TS's start).

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A dotted path with array indices (`ts.1.fault.drop_ratio`) as shown to users
/// (`ts.fault.drop_ratio`).
pub(super) fn display_path(path: &str) -> String {
    path.split('.')
        .filter(|seg| !seg.is_empty() && seg.parse::<usize>().is_err())
        .collect::<Vec<_>>()
        .join(".")
}

/// One key, table or array element of the file, with where it is.
#[derive(Debug)]
pub(super) struct Node {
    /// Dotted path with array indices, e.g. `ls.backend.1.addr`.
    pub(super) path: String,
    /// Where the key is written (for array elements: where the element is).
    key: Range<usize>,
    /// Where the value is written (for `[table]` headers: the header).
    value: Range<usize>,
    /// Whether the value is a table.
    pub(super) table: bool,
}

/// Where each key of a TOML text is, from toml's own spanned parse (made at
/// the first look-up).
pub(super) struct SourceMap<'a> {
    /// The text.
    pub(super) text: &'a str,
    /// The text's index, once looked into.
    index: std::sync::OnceLock<Index>,
}

/// The index of a [`SourceMap`]'s text.
struct Index {
    /// Every key and array element (empty when the text is not valid TOML).
    nodes: Vec<Node>,
    /// The index in `nodes` of the first node at each path.
    by_path: HashMap<String, usize>,
    /// The byte offset where each line starts (the first: 0).
    line_starts: Vec<usize>,
}

impl Index {
    /// Indexes `text`.
    fn of(text: &str) -> Self {
        let mut nodes = Vec::new();
        if let Ok(root) = DeTable::parse(text) {
            index_table(root.get_ref(), "", &mut nodes);
        }
        let mut by_path = HashMap::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            by_path.entry(node.path.clone()).or_insert(i);
        }
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Index {
            nodes,
            by_path,
            line_starts,
        }
    }
}

impl<'a> SourceMap<'a> {
    /// The map of `text`, indexed when first looked into.
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            index: std::sync::OnceLock::new(),
        }
    }

    /// The index, made now if not yet.
    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::of(self.text))
    }

    /// The 1-based line of byte `offset`.
    pub(super) fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        // The lines starting at or before `end`: at least the first.
        self.index()
            .line_starts
            .partition_point(|&start| start <= end)
    }

    /// The line of the first of `paths` written in the file, else of the nearest table
    /// enclosing the first path.
    pub(super) fn line_of_any(&self, paths: &[&str]) -> Option<usize> {
        let exact = paths.iter().find_map(|p| self.find(p));
        let node = exact.or_else(|| {
            let mut path = *paths.first()?;
            while let Some((parent, _)) = path.rsplit_once('.') {
                if let Some(node) = self.find(parent) {
                    return Some(node);
                }
                path = parent;
            }
            None
        })?;
        Some(self.line_at(node.key.start))
    }

    /// The node at exactly `path`.
    fn find(&self, path: &str) -> Option<&Node> {
        let index = self.index();
        index.by_path.get(path).and_then(|&i| index.nodes.get(i))
    }

    /// The key written at `offset`, else the innermost value containing it.
    pub(super) fn node_at(&self, offset: usize) -> Option<&Node> {
        let nodes = &self.index().nodes;
        nodes
            .iter()
            .find(|n| n.key.start == offset && n.key != n.value)
            .or_else(|| {
                nodes
                    .iter()
                    .filter(|n| {
                        n.value.start <= offset && offset < n.value.end.max(n.value.start + 1)
                    })
                    .max_by_key(|n| n.path.len())
            })
    }
}

/// Adds a node for every key under `table` (at `prefix`) to `out`, recursively.
fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Node>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        index_value(value.get_ref(), &path, key.span(), value.span(), out);
    }
}

/// Adds the node for one value, and for what it contains.
fn index_value(
    value: &DeValue<'_>,
    path: &str,
    key: Range<usize>,
    span: Range<usize>,
    out: &mut Vec<Node>,
) {
    out.push(Node {
        path: path.to_owned(),
        key,
        value: span,
        table: value.is_table(),
    });
    match value {
        DeValue::Table(table) => index_table(table, path, out),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                let span = item.span();
                index_value(
                    item.get_ref(),
                    &format!("{path}.{i}"),
                    span.clone(),
                    span,
                    out,
                );
            }
        }
        _ => {}
    }
}
