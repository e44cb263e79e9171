//! The reader's walk over a master file's entries: directives (`$ORIGIN`,
//! `$TTL`, `$GENERATE`, made by `generate.rs`, and `$INCLUDE`, handed back
//! to the caller: `include.rs` opens the file), the owner (`@`, relative, blank for the
//! previous one), TTL and class in either order, the type and its data; then
//! the checks a server needs ([`check`]).
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::fields::quoted;
use super::lexer::{MasterEntry, Token};
use super::records::{WireRecords, wire_name};
use super::{cursor, fields, rdata};
use crate::ts::wire::NAME_MAX;
use crate::ts::zone::in_zone;

/// A name in uncompressed wire form.
pub(super) fn name_wire(name: &Name) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(u8::try_from(label.len()).map_err(|_| "label over 63 bytes")?);
        out.extend_from_slice(label);
    }
    out.push(0);
    Ok(out)
}

/// The reader's state between entries.
pub(super) struct Reader {
    /// The current origin (`$ORIGIN`, else the caller's), wire form.
    pub(super) origin: Option<Vec<u8>>,
    /// `$TTL`, once set.
    pub(super) default_ttl: Option<u32>,
    /// The previous record's owner, wire form.
    owner: Option<Vec<u8>>,
    /// That owner as written (its token's bytes) under the origin in force:
    /// a record written with the same owner (`@` again, most often) takes
    /// it as it is, not read again (and shares its bytes in the records).
    owner_text: Vec<u8>,
    /// TTLs over [`fields::TTL_MAX`] read as 0: the first one's line and
    /// value, and how many.
    pub(super) ttls_over: Option<(usize, u32, usize)>,
    /// What the `$GENERATE` lines read so far made.
    pub(super) generated: super::generate::Generated,
    /// An owner being read (it becomes `owner` once read whole), and a
    /// record's data: buffers kept from one record to the next, so a record
    /// costs no allocation of its own.
    scratch: (Vec<u8>, Vec<u8>),
    /// The buffer `owner` takes for the file's first owner.
    spare: Vec<u8>,
}

/// A reader's buffers, kept on this thread from one file to the next
/// ([`Reader::new`] takes them, its drop gives them back): a TS of 100,000
/// small zones made and freed four of them a file.
#[derive(Default)]
struct Buffers {
    owner: Vec<u8>,
    owner_text: Vec<u8>,
    scratch: (Vec<u8>, Vec<u8>),
}

thread_local! {
    static KEPT: std::cell::Cell<Option<Buffers>> = const { std::cell::Cell::new(None) };
}

/// The most bytes a kept buffer holds on to (a record's data is at most
/// 65,535 bytes; a name, 255).
const KEPT_MAX: usize = 1 << 16;

impl Drop for Reader {
    /// Gives the buffers back to this thread, emptied, for the next file's
    /// reader (those grown past [`KEPT_MAX`] are freed).
    fn drop(&mut self) {
        let owner = self
            .owner
            .take()
            .unwrap_or_else(|| std::mem::take(&mut self.spare));
        let mut kept = Buffers {
            owner,
            owner_text: std::mem::take(&mut self.owner_text),
            scratch: std::mem::take(&mut self.scratch),
        };
        for buf in [
            &mut kept.owner,
            &mut kept.owner_text,
            &mut kept.scratch.0,
            &mut kept.scratch.1,
        ] {
            buf.clear();
            buf.shrink_to(KEPT_MAX);
        }
        KEPT.set(Some(kept));
    }
}

/// The TTL of a record with none when the file sets no `$TTL` (NSD 4.6's default).
const DEFAULT_TTL: u32 = 3600;

impl Reader {
    /// A reader starting at `origin` (wire form), if given.
    pub(super) fn new(origin: Option<Vec<u8>>) -> Self {
        let kept = KEPT.take().unwrap_or_else(|| Buffers {
            owner: Vec::with_capacity(64),
            owner_text: Vec::with_capacity(64),
            scratch: (Vec::with_capacity(64), Vec::with_capacity(64)),
        });
        Reader {
            origin,
            default_ttl: None,
            owner: None,
            owner_text: kept.owner_text,
            ttls_over: None,
            generated: super::generate::Generated::default(),
            scratch: kept.scratch,
            spare: kept.owner,
        }
    }

    /// Reads one entry: a directive, or a record added to `out`; a
    /// `$INCLUDE` is handed back, for the caller to read.
    pub(super) fn entry(
        &mut self,
        entry: &MasterEntry<'_>,
        out: &mut WireRecords,
    ) -> Result<Option<Include>, cursor::Bad> {
        let line = entry.first_line;
        let mut tokens = entry.tokens.iter();
        let Some(first) = entry.tokens.first() else {
            return Ok(None);
        };
        if !entry.blank_owner && !first.quoted && first.text.starts_with(b"$") {
            if first.text.eq_ignore_ascii_case(b"$GENERATE") {
                // A record made is never a directive: no `$INCLUDE` back.
                let mut made = self.generated;
                let each = |e: &MasterEntry<'_>| self.entry(e, out).map(drop);
                let expanded = super::generate::expand(entry, &mut made, each);
                self.generated = made;
                return expanded.map(|()| None);
            }
            return self.directive(entry);
        }
        if !entry.blank_owner {
            tokens.next();
            let same = self.owner.is_some()
                && !first.text.is_empty()
                && first.text == self.owner_text.as_slice();
            if !same {
                // Read aside: a bad name leaves the previous owner in force.
                let next = &mut self.scratch.0;
                next.clear();
                fields::name_onto(first.text, self.origin.as_deref(), next)
                    .map_err(|m| (line, m))?;
                match &mut self.owner {
                    Some(owner) => std::mem::swap(owner, next),
                    None => {
                        let spare = std::mem::take(&mut self.spare);
                        self.owner = Some(std::mem::replace(next, spare));
                    }
                }
                self.owner_text.clear();
                self.owner_text.extend_from_slice(first.text);
                out.set_owner();
            }
        }
        let (mut ttl, mut class) = (None, None);
        let code = loop {
            let Some(token) = tokens.next() else {
                return Err((line, "missing record type".into()));
            };
            let raw = token.text;
            if token.quoted {
                let msg = format!("expected a record type, got \"{}\"", quoted(raw));
                return Err((token.line, msg));
            }
            if ttl.is_none() && fields::looks_like_ttl(raw) {
                let value = fields::ttl(raw).map_err(|m| (token.line, m))?;
                ttl = Some(self.ttl_in_range(token.line, value));
            } else if let Some(c) = class.is_none().then(|| fields::class_code(raw)).flatten() {
                class = Some(c);
            } else if let Some(code) = fields::type_code(raw) {
                break code;
            } else {
                let msg = format!("unknown type '{}'", quoted(raw));
                return Err((token.line, msg));
            }
        };
        let wire = &mut self.scratch.1;
        rdata::wire_into(code, tokens.as_slice(), self.origin.as_deref(), line, wire)?;
        // Its error after the data's, as it always came.
        let owner = self.owner.as_deref().ok_or_else(|| {
            (
                line,
                "a record with a blank owner and no previous record".to_owned(),
            )
        })?;
        let ttl = ttl.or(self.default_ttl).unwrap_or(DEFAULT_TTL);
        out.push(owner, (code, class.unwrap_or(1), ttl), wire, line)
            .map_err(|m| (line, m))?;
        Ok(None)
    }

    /// Enters an included file read from `origin` (wire form): returns the
    /// origin in force, which [`Reader::leave`] restores after it.
    pub(super) fn enter(&mut self, origin: Option<Vec<u8>>) -> Option<Vec<u8>> {
        // A relative owner (`@` too) names another name there.
        self.owner_text.clear();
        std::mem::replace(&mut self.origin, origin)
    }

    /// Back in the including file: its origin (RFC 1035 §5.1: an included
    /// file's `$ORIGIN` does not change the including file's).
    pub(super) fn leave(&mut self, origin: Option<Vec<u8>>) {
        self.owner_text.clear();
        self.origin = origin;
    }

    /// `value`, or 0 if it is over [`fields::TTL_MAX`] (RFC 2181 §8: such a
    /// TTL is read as zero; BIND does the same with a warning, NSD and Knot
    /// load it), noted for the warning.
    fn ttl_in_range(&mut self, line: usize, value: u32) -> u32 {
        if value <= fields::TTL_MAX {
            return value;
        }
        match &mut self.ttls_over {
            Some((_, _, n)) => *n += 1,
            None => self.ttls_over = Some((line, value, 1)),
        }
        0
    }

    /// `$ORIGIN name`, `$TTL ttl`, `$INCLUDE file [origin]` (handed back);
    /// anything else is refused.
    fn directive(&mut self, entry: &MasterEntry<'_>) -> Result<Option<Include>, cursor::Bad> {
        let line = entry.first_line;
        let [directive, args @ ..] = entry.tokens.as_slice() else {
            return Ok(None);
        };
        let keyword = directive.text;
        if keyword.eq_ignore_ascii_case(b"$INCLUDE") {
            return self.include(line, args).map(Some);
        }
        // A `$INCLUDE` is a line of its own: one after another directive's
        // argument (hickory followed it there) is refused, not followed.
        let is_include = |t: &[u8]| {
            t.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"$INCLUDE"))
        };
        if let Some(include) = args.iter().find(|a| is_include(a.text)) {
            return Err((include.line, "$INCLUDE must begin its own line".into()));
        }
        let one = |what: &str| match args {
            [arg] => Ok(arg.text),
            [] => Err((line, format!("{what} needs an argument"))),
            [_, extra, ..] => Err((
                extra.line,
                format!("unexpected '{}' after {what}", quoted(extra.text)),
            )),
        };
        if keyword.eq_ignore_ascii_case(b"$ORIGIN") {
            let raw = one("$ORIGIN")?;
            let origin = fields::name(raw, self.origin.as_deref()).map_err(|m| (line, m))?;
            self.origin = Some(origin);
            // A relative owner (`@` too) names another name now.
            self.owner_text.clear();
        } else if keyword.eq_ignore_ascii_case(b"$TTL") {
            let raw = one("$TTL")?;
            let value = fields::ttl(raw).map_err(|m| (line, m))?;
            self.default_ttl = Some(self.ttl_in_range(line, value));
        } else {
            let msg = format!("unknown directive '{}'", quoted(directive.text));
            return Err((line, msg));
        }
        Ok(None)
    }

    /// `$INCLUDE <file-name> [<domain-name>] [<comment>]` (RFC 1035 §5.1;
    /// the comment is a `;` comment, gone already): the file named, escapes
    /// undone, and its origin, the one given (relative to the origin in
    /// force) or the origin in force.
    fn include(&self, line: usize, args: &[Token<'_>]) -> Result<Include, cursor::Bad> {
        let (file, origin) = match args {
            [] => return Err((line, "$INCLUDE needs a file name".into())),
            [file] => (file, None),
            [file, origin] => (file, Some(origin)),
            [_, _, extra, ..] => {
                let msg = format!(
                    "unexpected '{}' after $INCLUDE's file and origin",
                    quoted(extra.text)
                );
                return Err((extra.line, msg));
            }
        };
        let name = fields::unescape(file.text).map_err(|m| (file.line, m))?;
        if name.is_empty() {
            return Err((file.line, "$INCLUDE needs a file name".into()));
        }
        let origin = match origin {
            Some(o) => Some(fields::name(o.text, self.origin.as_deref()).map_err(|m| (o.line, m))?),
            None => self.origin.clone(),
        };
        Ok(Include {
            line,
            file: name,
            origin,
        })
    }
}

/// A `$INCLUDE` read: the line it is on, the file named (as written,
/// escapes undone), and the origin the file is read from (wire form).
pub(super) struct Include {
    pub(super) line: usize,
    pub(super) file: Vec<u8>,
    pub(super) origin: Option<Vec<u8>>,
}

/// The checks a server needs: exactly one SOA (its owner is the zone
/// origin), class IN, every name at or below the origin, of `records`.
/// Returns the zone origin, or the problems (every record's, up to
/// `max`), each with the index of its record when it has one (an included
/// file's record is located in that file).
/// More than one CNAME at a name, and a CNAME beside other data, are the
/// zone builder's to find (after duplicates are merged).
pub(super) fn check(
    records: &WireRecords,
    last_origin: Option<&[u8]>,
    max: usize,
) -> Result<Name, Vec<Located>> {
    let shown = |wire: &[u8]| wire_name(wire).map_or_else(|_| "?".to_owned(), |n| n.to_string());
    let soa_type = u16::from(RecordType::SOA);
    let (zone, soa_owner) = zone_of_soa(records, soa_type, last_origin, &shown)?;
    // The origin lower-cased, on the stack (a name is at most 255 bytes:
    // `wire_name` read it); each owner is tested against it as written.
    let mut key = [0u8; NAME_MAX];
    let Some(origin) = key.get_mut(..soa_owner.len()) else {
        return Err(vec![(None, (1, "bad name".to_owned()))]);
    };
    origin.copy_from_slice(soa_owner);
    origin.make_ascii_lowercase();
    let origin = &*origin;
    let mut problems = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if problems.len() >= max {
            break;
        }
        if record.class != 1 {
            let class = DNSClass::from(record.class);
            problems.push((
                Some(index),
                (
                    record.line,
                    format!("class {class} is not supported (only IN)"),
                ),
            ));
        } else if in_zone(record.owner, origin).is_none() {
            problems.push((
                Some(index),
                (
                    record.line,
                    format!("{} is outside the zone {zone}", shown(record.owner)),
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(zone)
}

/// A problem [`check`] found, with the index of the record at fault, if
/// one is.
pub(super) type Located = (Option<usize>, cursor::Bad);

/// The zone's origin from its one SOA, as a name and in wire form as
/// written; `last_origin` (wire form, the root when `None`) names the
/// zone when there is no SOA.
fn zone_of_soa<'r>(
    records: &'r WireRecords,
    soa_type: u16,
    last_origin: Option<&[u8]>,
    shown: &dyn Fn(&[u8]) -> String,
) -> Result<(Name, &'r [u8]), Vec<Located>> {
    let mut soas = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rtype == soa_type);
    let Some((_, soa)) = soas.next() else {
        let last_origin = last_origin.map_or_else(|| Name::root().to_string(), shown);
        return Err(vec![(
            None,
            (1, format!("no SOA at the zone origin {last_origin}")),
        )]);
    };
    if let Some((index, second)) = soas.next() {
        let msg = format!(
            "more than one SOA ({} and {})",
            shown(soa.owner),
            shown(second.owner)
        );
        return Err(vec![(Some(index), (second.line, msg))]);
    }
    let zone = wire_name(soa.owner).map_err(|m| vec![(None, (soa.line, m))])?;
    Ok((zone, soa.owner))
}
