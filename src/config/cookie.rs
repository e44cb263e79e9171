//! `cookie_secret` in `[[ts]]` and `[ls]` ([`CookieSecrets`]): the server
//! secrets of DNS Cookies (RFC 9018), as BIND's `cookie-secret`: a list of
//! 128-bit secrets in hex, the first making server cookies, every one
//! accepted, so that a rotation adds the new secret first and removes the
//! old one later; none, a random secret made at start. Never printed.
use serde::Deserialize;

use crate::dns::cookie::{ServerSecrets, parse_secret};

/// `cookie_secret`: the secrets as written (hex); empty: a random one.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CookieSecrets(pub Vec<String>);

impl std::fmt::Debug for CookieSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieSecrets({} secret(s), not shown)", self.0.len())
    }
}

impl CookieSecrets {
    /// The secrets to make and check cookies with (checked when the config
    /// was read); a random one when there are none or one does not read.
    /// Whether secrets are given (a TS answers cookies only then).
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// The secrets as the servers hold them (a random one when none is set).
    pub fn server_secrets(&self) -> ServerSecrets {
        ServerSecrets::from_hex(&self.0).unwrap_or_else(|_| ServerSecrets::random())
    }

    /// Each problem of the list at `path` (`ts.0.cookie_secret`): its key
    /// and what is wrong, the secret itself not shown.
    pub(crate) fn problems(&self, path: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, hex)| {
                let e = parse_secret(hex).err()?;
                Some((path.to_owned(), format!("secret {}: {e}", i + 1)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_one_by_one_and_never_shown() {
        let good = "e5e973e5a6b2a43f48e7dc849e37bfcf".to_owned();
        let list = CookieSecrets(vec![good.clone(), "xyz".into()]);
        let p = list.problems("ls.cookie_secret");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "ls.cookie_secret");
        assert!(
            p[0].1.starts_with("secret 2: must be 32 hex digits"),
            "{}",
            p[0].1
        );
        assert!(!format!("{list:?}").contains("e5e9"));
        assert!(CookieSecrets(vec![good]).problems("x").is_empty());
    }
}
