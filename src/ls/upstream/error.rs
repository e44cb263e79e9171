//! Why an upstream exchange gave no response, as the drivers report it.

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// A socket error (connection refused, unreachable...).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The backend's response could not be used (oversized, bad TCP framing).
    #[error("unusable response")]
    Unusable,
    /// Its link (an encrypted one) is full: the query was refused at once,
    /// never sent.
    #[error("the link to the backend is full")]
    Full,
}
