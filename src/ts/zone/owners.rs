//! The owners of a zone being built ([`Owners`]): each distinct name, case
//! aside, numbered once in order of first appearance.
use super::store::{EMPTY, hash_lower};
use crate::ts::source::BuildError;

/// The owners of a zone being built: each distinct name (case aside) once,
/// as first written, in order of first appearance.
pub(super) struct Owners {
    /// Owner names in wire form, concatenated.
    pub(super) names: Vec<u8>,
    /// Per owner: where its name starts in `names`, its length.
    pub(super) spans: Vec<(u32, u8)>,
    /// Open-addressing index of owner numbers by lower-cased name.
    table: Vec<u32>,
}

impl Owners {
    pub(super) fn with_capacity(n: usize) -> Self {
        Owners {
            names: Vec::with_capacity(n * 24),
            spans: Vec::with_capacity(n),
            table: vec![EMPTY; (n + n / 3 + 1).next_power_of_two()],
        }
    }

    pub(super) fn name(&self, owner: u32) -> &[u8] {
        let (start, len) = self.spans[owner as usize];
        &self.names[start as usize..start as usize + usize::from(len)]
    }

    /// The owner number of `wire` (a wire name, any case), if seen.
    pub(super) fn find(&self, wire: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut i = (hash_lower(wire) as usize) & mask;
        loop {
            match self.table[i] {
                EMPTY => return None,
                o if same_name(self.name(o), wire) => return Some(o),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Doubles the index when it is three quarters full.
    fn grow(&mut self) {
        if (self.spans.len() + 1) * 4 <= self.table.len() * 3 {
            return;
        }
        let slots = (self.table.len() * 2).max(16);
        let mask = slots - 1;
        let mut table = vec![EMPTY; slots];
        for o in 0..self.spans.len() as u32 {
            let mut i = (hash_lower(self.name(o)) as usize) & mask;
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = o;
        }
        self.table = table;
    }

    /// The owner number of `wire` (as written), added when new.
    pub(super) fn intern(&mut self, wire: &[u8]) -> Result<u32, BuildError> {
        self.grow();
        if wire.len() > 255 {
            return Err(BuildError::NameTooLong);
        }
        let mask = self.table.len() - 1;
        let mut i = (hash_lower(wire) as usize) & mask;
        loop {
            match self.table[i] {
                EMPTY => break,
                o if same_name(self.name(o), wire) => return Ok(o),
                _ => i = (i + 1) & mask,
            }
        }
        let owner = u32::try_from(self.spans.len()).map_err(|_| BuildError::TooManyNames)?;
        let start = u32::try_from(self.names.len()).map_err(|_| BuildError::TooManyNames)?;
        let len = u8::try_from(wire.len()).map_err(|_| BuildError::NameTooLong)?;
        self.names.extend_from_slice(wire);
        self.spans.push((start, len));
        self.table[i] = owner;
        Ok(owner)
    }
}

/// Whether two wire names are the same name, case aside: the bytes at once
/// first (a zone's names are mostly written in one case), letter by letter
/// only when they differ.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}
