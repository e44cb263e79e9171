//! Zone sources: the records read from one file, and the `file:line` error type
//! shared by both formats (PROJ tables and RFC 1035 master files).
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RData};

/// One record as read from a zone source, with the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Owner name, fully qualified, case as written in the file.
    pub name: Name,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record data (its type is `data.record_type()`).
    pub data: RData,
    /// 1-based line number in the source file.
    pub line: usize,
}

/// A problem in a zone source, always naming the file and (where there is one) the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    /// A bad line: `file:line: what is wrong`.
    #[error("{}:{line}: {msg}", file.display())]
    Line {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in a few words.
        msg: String,
    },
    /// The files changed every time they were read (each read of them was
    /// compared with their bytes before and after): a writer was rewriting
    /// them in place.
    #[error(
        "{}: changed while being read, {tries} times in a row: replace a zone file by writing a new file and renaming it over the old",
        file.display()
    )]
    Unsettled {
        /// The first zone file (the files are checked together).
        file: PathBuf,
        /// Reads tried.
        tries: u32,
    },
    /// The file could not be read at all.
    #[error("{}: cannot read: {msg}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error text.
        msg: String,
    },
}

impl ZoneError {
    /// A `file:line` error.
    pub fn line(file: &Path, line: usize, msg: impl Into<String>) -> Self {
        ZoneError::Line {
            file: file.to_path_buf(),
            line,
            msg: msg.into(),
        }
    }
}
