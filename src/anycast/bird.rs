//! BIRD's control socket (what `birdc` speaks): [`Bird`] holds one
//! connection and sends `enable NAME` / `disable NAME`, reconnecting when
//! BIRD restarted. The reply's reading is pure ([`read_reply`]).
//!
//! The protocol: BIRD greets with `0001 BIRD x.y ready.`; each reply line is
//! a 4-digit code and `-` (more lines follow) or ` ` (the last line); lines
//! that start with a space continue the previous code. Codes 0008-0011 are
//! "already disabled", "disabled", "already enabled", "enabled"; 8xxx and
//! 9xxx are errors (an unknown protocol is a 9001 syntax error).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Why BIRD did not do what it was told.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// The socket could not be reached, or the connection broke.
    #[error("bird control socket {}: {source}", .path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// BIRD took longer than the timeout to answer.
    #[error("bird control socket {}: no answer in time", .0.display())]
    Timeout(PathBuf),
    /// BIRD answered with an error, or something that is not its protocol.
    #[error("bird said to `{command}`: {reply}")]
    Refused {
        /// The command sent.
        command: String,
        /// BIRD's reply, its lines joined.
        reply: String,
    },
}

/// One reply of BIRD's, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdReply {
    /// The code of the last line (0 = done).
    pub last: u16,
    /// Every code seen, in order.
    pub codes: Vec<u16>,
    /// The text of the lines, joined by "; ".
    pub text: String,
}

impl BirdReply {
    /// Whether no line is an error (8xxx run-time, 9xxx syntax).
    pub fn ok(&self) -> bool {
        self.codes.iter().all(|&c| c < 8000)
    }
}

/// Reads one line of a reply into `acc`; `Some(true)` once the reply is
/// complete, `None` for a line that is not BIRD's protocol.
fn take_line(line: &str, acc: &mut BirdReply) -> Option<bool> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(more) = line.strip_prefix(' ') {
        // A continuation of the previous code.
        push_text(acc, more);
        return Some(false);
    }
    let code = line.get(..4)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    let (sep, text) = (line.get(4..5)?, line.get(5..).unwrap_or(""));
    acc.codes.push(code);
    acc.last = code;
    push_text(acc, text);
    match sep {
        " " => Some(true),
        "-" => Some(false),
        _ => None,
    }
}

fn push_text(acc: &mut BirdReply, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if !acc.text.is_empty() {
        acc.text.push_str("; ");
    }
    acc.text.push_str(text);
}

/// Reads one whole reply from `lines` (pure: for the tests, and the socket's
/// reader below feeds it line by line). `None` when the text ends first or
/// is not BIRD's protocol.
pub fn read_reply<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<BirdReply> {
    let mut acc = empty();
    for line in lines {
        if take_line(line, &mut acc)? {
            return Some(acc);
        }
    }
    None
}

fn empty() -> BirdReply {
    BirdReply {
        last: 0,
        codes: Vec::new(),
        text: String::new(),
    }
}

/// The longest reply line read (BIRD's are short; a longer one is not BIRD).
const MAX_LINE: usize = 4096;

/// A client of BIRD's control socket, connected on first use and again
/// after an error.
pub struct Bird {
    path: PathBuf,
    timeout: Duration,
    conn: Option<BufReader<UnixStream>>,
}

impl Bird {
    /// A client of the socket at `path`; each command waits at most `timeout`.
    pub fn new(path: &Path, timeout: Duration) -> Self {
        Bird {
            path: path.to_owned(),
            timeout,
            conn: None,
        }
    }

    /// Sends `enable NAME` (`on`) or `disable NAME`: whether it was already
    /// so (BIRD's "already enabled/disabled").
    ///
    /// # Errors
    /// The socket cannot be reached, or BIRD refuses (an unknown protocol).
    pub async fn set(&mut self, name: &str, on: bool) -> Result<bool, BirdError> {
        let command = format!("{} {name}", if on { "enable" } else { "disable" });
        let reply = self.command(&command).await?;
        if !reply.ok() || !reply.codes.iter().any(|c| (8..=11).contains(c)) {
            return Err(BirdError::Refused {
                command,
                reply: reply.text,
            });
        }
        Ok(reply.codes.iter().any(|&c| c == 8 || c == 10))
    }

    /// Sends one command and reads its reply, in at most the timeout; a
    /// broken connection is dropped (the next command connects again).
    async fn command(&mut self, command: &str) -> Result<BirdReply, BirdError> {
        let result = tokio::time::timeout(self.timeout, self.exchange(command)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(BirdError::Timeout(self.path.clone())),
        };
        if matches!(result, Err(BirdError::Io { .. } | BirdError::Timeout(_))) {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, command: &str) -> Result<BirdReply, BirdError> {
        let io = |source| BirdError::Io {
            path: self.path.clone(),
            source,
        };
        if self.conn.is_none() {
            let stream = UnixStream::connect(&self.path).await.map_err(io)?;
            let mut conn = BufReader::new(stream);
            let hello = read_socket_reply(&mut conn).await.map_err(io)?;
            if hello.last != 1 {
                return Err(BirdError::Refused {
                    command: "(connect)".into(),
                    reply: hello.text,
                });
            }
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(io(std::io::ErrorKind::NotConnected.into()));
        };
        conn.get_mut()
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io)?;
        read_socket_reply(conn).await.map_err(io)
    }
}

/// Reads one reply from the socket.
async fn read_socket_reply(conn: &mut BufReader<UnixStream>) -> std::io::Result<BirdReply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut acc = empty();
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut *conn)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !line.ends_with('\n') {
            return Err(bad("a reply line too long"));
        }
        match take_line(&line, &mut acc) {
            Some(true) => return Ok(acc),
            Some(false) => {}
            None => return Err(bad("not bird's control protocol")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_bird_writes_them() {
        let r = read_reply(["0011-anycast4: enabled\n", "0000 \n"]).unwrap();
        assert_eq!(r.codes, [11, 0]);
        assert!(r.ok());
        assert_eq!(r.text, "anycast4: enabled");
        let r = read_reply(["0001 BIRD 2.0.12 ready.\n"]).unwrap();
        assert_eq!(r.last, 1);
        let r = read_reply([
            "2002-Name       Proto\n",
            "1002-anycast4   Static\n",
            " continued\n",
            "0000 \n",
        ])
        .unwrap();
        assert_eq!(r.codes, [2002, 1002, 0]);
        assert!(r.text.contains("continued"));
    }

    #[test]
    fn errors_and_foreign_text_are_told_apart() {
        let r = read_reply(["9001 syntax error, unexpected CF_SYM_UNDEFINED\n"]).unwrap();
        assert!(!r.ok());
        assert_eq!(read_reply(["HTTP/1.1 200 OK\n"]), None);
        assert_eq!(read_reply(["0011-anycast4: enabled\n"]), None);
    }
}
