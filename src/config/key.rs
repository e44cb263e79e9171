//! `[[key]]`: [`KeyConfig`], a TSIG key (RFC 8945) that a `[[ts]]` names in
//! `xfr_key`; its secret inline (`secret`, base64) or in a file
//! (`secret_file`: the base64 alone, the `key "name" { ... };` stanza
//! `tsig-keygen` writes, the `key:` list Knot's `keymgr -t` writes, or
//! `ALGORITHM:NAME:SECRET`), read at validation, at start and on each SIGHUP
//! ([`KeyConfig::load`]). Neither `Debug` nor an error message shows a secret.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::dns::tsig::{Algorithm, Key};

keyword_enum! {
    /// `key.algorithm`: the HMAC of a TSIG key.
    KeyAlgorithm, default HmacSha256 {
        /// HMAC-SHA256.
        HmacSha256 = "hmac-sha256",
        /// HMAC-SHA384.
        HmacSha384 = "hmac-sha384",
        /// HMAC-SHA512.
        HmacSha512 = "hmac-sha512",
    }
}

impl From<KeyAlgorithm> for Algorithm {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::HmacSha256 => Algorithm::HmacSha256,
            KeyAlgorithm::HmacSha384 => Algorithm::HmacSha384,
            KeyAlgorithm::HmacSha512 => Algorithm::HmacSha512,
        }
    }
}

/// `[[key]]`: one TSIG key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Its name, a DNS name (`xfr`, `xfr.example.`): the name the peers'
    /// configs give it.
    pub name: String,
    /// Its HMAC. \[hmac-sha256\]
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
    /// The secret, base64 (or `secret_file`).
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret: base64, or a BIND `key` stanza as
    /// `tsig-keygen` writes it; relative to the config file's folder.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "(hidden)"))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// Why a `[[key]]` cannot be used; the message never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct KeyError {
    /// The key of `[[key]]` at fault (`name`, `secret`, `secret_file`).
    pub key: &'static str,
    /// What is wrong.
    pub msg: String,
}

impl KeyConfig {
    /// The key, its secret read (from the file when `secret_file`) and checked.
    ///
    /// # Errors
    /// Both or neither of `secret` and `secret_file`, a file that cannot be
    /// read or holds no secret, a secret that is not base64 or is shorter
    /// than half the hash (RFC 8945 §6), a name that is not a DNS name.
    pub fn load(&self) -> Result<Key, KeyError> {
        let fail = |key, msg: String| KeyError { key, msg };
        let algorithm = Algorithm::from(self.algorithm);
        let (text, key) = match (&self.secret, &self.secret_file) {
            (Some(s), None) => (s.clone(), "secret"),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(
                        "secret_file",
                        format!("{}: cannot read: {e}", path.display()),
                    )
                })?;
                let secret = file_secret(&text, &self.name, algorithm)
                    .map_err(|m| fail("secret_file", format!("{}: {m}", path.display())))?;
                (secret, "secret_file")
            }
            (Some(_), Some(_)) => {
                return Err(fail(
                    "secret",
                    "give secret or secret_file, not both".into(),
                ));
            }
            (None, None) => {
                return Err(fail(
                    "name",
                    format!("key {:?} needs a secret or a secret_file", self.name),
                ));
            }
        };
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = data_encoding::BASE64
            .decode(clean.as_bytes())
            .map_err(|e| {
                let formats = match key {
                    "secret_file" => format!("; the file may hold {FILE_FORMATS}"),
                    _ => String::new(),
                };
                fail(key, format!("the secret is not base64 ({e}){formats}"))
            })?;
        let least = algorithm.mac_len() / 2;
        if bytes.len() < least {
            return Err(fail(
                key,
                format!(
                    "the secret is {} bytes; {algorithm} needs at least {least} (RFC 8945 §6; `tsig-keygen -a {algorithm}` makes one)",
                    bytes.len()
                ),
            ));
        }
        Key::new(&self.name, algorithm, &bytes).map_err(|e| fail("name", e.to_string()))
    }
}

/// What a `secret_file` may hold, for the error of one that holds none.
const FILE_FORMATS: &str = "the base64 secret alone, a BIND key stanza (`tsig-keygen`: key \"xfr\" { algorithm hmac-sha256; secret \"...\"; };), Knot's key list (`keymgr -t`: key: - id: xfr, algorithm: hmac-sha256, secret: ...) or ALGORITHM:NAME:SECRET (`dig -y`)";

/// `line` without its comment: from a `#` outside double quotes, and with
/// `slashes` (a BIND stanza, whose secret is quoted) from a `//` outside
/// them. Base64 holds `/` and `//` (about 1 key in 100): a bare secret, a
/// quoted one and Knot's unquoted one are never cut there.
fn uncommented(line: &str, slashes: bool) -> &str {
    let mut quoted = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'#' if !quoted => return line.get(..i).unwrap_or(line),
            b'/' if slashes && !quoted && bytes.get(i + 1) == Some(&b'/') => {
                return line.get(..i).unwrap_or(line);
            }
            _ => {}
        }
    }
    line
}

/// The base64 secret in a `secret_file`'s `text`: the text itself, the
/// `secret "..."` of the `key` stanza named `name` (or of the only one) as
/// `tsig-keygen` writes it, the `secret:` of Knot's `key:` list entry with
/// `id: name` (or of the only one) as `keymgr -t` writes it, or the last
/// field of `ALGORITHM:NAME:SECRET`; a named algorithm must be `algorithm`.
fn file_secret(text: &str, name: &str, algorithm: Algorithm) -> Result<String, String> {
    let strip = |slashes| {
        text.lines()
            .map(|l| uncommented(l, slashes))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plain = strip(false);
    let keys = if plain.contains('{') {
        stanzas(&strip(true)).ok_or_else(|| format!("not a key file: expected {FILE_FORMATS}"))?
    } else if let Some(keys) = knot_keys(&plain) {
        keys
    } else if let Some(key) = colon_key(&plain) {
        vec![key]
    } else {
        let secret = plain.trim();
        if secret.is_empty() {
            return Err(format!("no secret in the file: expected {FILE_FORMATS}"));
        }
        return Ok(secret.to_owned());
    };
    let wanted = |n: &str| {
        n.trim_end_matches('.')
            .eq_ignore_ascii_case(name.trim_end_matches('.'))
    };
    let key = match keys.iter().find(|s| wanted(&s.0)) {
        Some(s) => s,
        None if keys.len() == 1 => &keys[0],
        None => return Err(format!("no key named {name:?} in the file")),
    };
    if let Some(alg) = &key.1
        && Algorithm::from_name(alg) != Some(algorithm)
    {
        return Err(format!(
            "the file says algorithm {alg}, the [[key]] {algorithm}"
        ));
    }
    key.2
        .clone()
        .ok_or_else(|| "the key in the file has no secret".into())
}

/// The keys of Knot's `key:` list (`keymgr -t NAME` prints one): each
/// entry's `id`, `algorithm` and `secret` (quotes removed). `None` when the
/// text is not such a list.
fn knot_keys(text: &str) -> Option<Vec<Stanza>> {
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next()? != "key:" {
        return None;
    }
    let mut out: Vec<Stanza> = Vec::new();
    for line in lines {
        let field = match line.strip_prefix("- ") {
            Some(rest) => {
                out.push((String::new(), None, None));
                rest.trim_start()
            }
            None => line,
        };
        let (k, v) = field.split_once(':')?;
        let entry = out.last_mut()?;
        match k.trim() {
            "id" => entry.0 = unquote(v),
            "algorithm" => entry.1 = Some(unquote(v)),
            "secret" => entry.2 = Some(unquote(v)),
            _ => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `ALGORITHM:NAME:SECRET` on one line (the form of `dig -y`, and of the
/// comment `keymgr -t` starts with).
fn colon_key(text: &str) -> Option<Stanza> {
    let line = text.trim();
    let mut parts = line.splitn(3, ':');
    let (alg, name, secret) = (parts.next()?, parts.next()?, parts.next()?);
    Algorithm::from_name(alg)?;
    (!line.contains(char::is_whitespace)).then(|| {
        (
            name.to_owned(),
            Some(alg.to_owned()),
            Some(secret.to_owned()),
        )
    })
}

/// One `key` stanza of a file: its name, `algorithm` and `secret`.
type Stanza = (String, Option<String>, Option<String>);

/// The `key NAME { statements };` stanzas of `text`: each key's name, its
/// `algorithm` and its `secret` (quotes removed). `None` when the text is
/// not made of such stanzas.
fn stanzas(text: &str) -> Option<Vec<Stanza>> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let after = rest.strip_prefix("key")?;
        let open = after.find('{')?;
        let close = after.find('}')?;
        if close < open {
            return None;
        }
        let name = unquote(after.get(..open)?);
        let (mut alg, mut secret) = (None, None);
        for statement in after.get(open + 1..close)?.split(';') {
            let statement = statement.trim();
            if let Some(v) = statement.strip_prefix("algorithm") {
                alg = Some(unquote(v));
            } else if let Some(v) = statement.strip_prefix("secret") {
                secret = Some(unquote(v));
            }
        }
        out.push((name, alg, secret));
        rest = after.get(close + 1..)?.trim_start();
        rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(secret: &str, algorithm: KeyAlgorithm) -> KeyConfig {
        KeyConfig {
            name: "xfr".into(),
            algorithm,
            secret: Some(secret.into()),
            secret_file: None,
        }
    }

    const B64_32: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";

    #[test]
    fn a_secret_is_base64_long_enough_and_never_shown() {
        let k = inline(B64_32, KeyAlgorithm::HmacSha256);
        assert_eq!(k.load().unwrap().name(), "xfr");
        assert!(!format!("{k:?}").contains(B64_32));
        let e = inline("not base64!", KeyAlgorithm::HmacSha256)
            .load()
            .unwrap_err();
        assert_eq!(e.key, "secret");
        assert!(e.msg.starts_with("the secret is not base64"), "{e}");
        assert!(!e.msg.contains("not base64!"), "the secret is not echoed");
        // 16 bytes: enough for sha256 (half of 32), not for sha512.
        let short = "MDEyMzQ1Njc4OWFiY2RlZg==";
        assert!(inline(short, KeyAlgorithm::HmacSha256).load().is_ok());
        let e = inline(short, KeyAlgorithm::HmacSha512).load().unwrap_err();
        assert!(
            e.msg.contains("16 bytes; hmac-sha512 needs at least 32"),
            "{e}"
        );
        let both = KeyConfig {
            secret_file: Some("f".into()),
            ..inline(B64_32, KeyAlgorithm::HmacSha256)
        };
        assert!(both.load().unwrap_err().msg.contains("not both"));
        let neither = KeyConfig {
            secret: None,
            ..inline(B64_32, KeyAlgorithm::HmacSha256)
        };
        assert!(neither.load().unwrap_err().msg.contains("needs a secret"));
    }

    #[test]
    fn a_secret_file_holds_base64_or_a_tsig_keygen_stanza() {
        let alg = Algorithm::HmacSha256;
        assert_eq!(
            file_secret(&format!("{B64_32}\n"), "xfr", alg).unwrap(),
            B64_32
        );
        let keygen =
            format!("key \"xfr\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{B64_32}\";\n}};\n");
        assert_eq!(file_secret(&keygen, "xfr.", alg).unwrap(), B64_32);
        let two = format!(
            "# keys\nkey \"other\" {{ algorithm hmac-sha512; secret \"AAAA\"; }};\n{keygen}"
        );
        assert_eq!(file_secret(&two, "xfr", alg).unwrap(), B64_32);
        assert!(
            file_secret(&two, "nope", alg)
                .unwrap_err()
                .contains("no key named")
        );
        let e = file_secret(&keygen, "xfr", Algorithm::HmacSha512).unwrap_err();
        assert!(e.contains("algorithm hmac-sha256"), "{e}");
        assert!(file_secret("key { oops", "xfr", alg).is_err());
        assert!(file_secret("\n", "xfr", alg).is_err());
    }

    /// base64 holds `//` (about 1 key in 100 of
    /// `tsig-keygen`); it is no comment inside a quoted secret, nor in a bare
    /// or Knot secret. Comments outside quotes still go.
    #[test]
    fn a_secret_with_two_slashes_is_read_whole() {
        let alg = Algorithm::HmacSha256;
        let slashed = "CO63x503iAV37SnkFPC86Yk3vRfP//Cu7Fl7zAPbeBA=";
        let keygen = format!(
            "// made by tsig-keygen\nkey \"xfr\" {{ // the transfer key\n\talgorithm hmac-sha256;\n\
             \tsecret \"{slashed}\"; // keep it safe\n}};\n"
        );
        assert_eq!(file_secret(&keygen, "xfr", alg).unwrap(), slashed);
        assert_eq!(
            file_secret(&format!("{slashed}\n"), "xfr", alg).unwrap(),
            slashed
        );
        assert_eq!(
            file_secret(&format!("# the key\n{slashed} # comment\n"), "xfr", alg).unwrap(),
            slashed
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xfr.key");
        std::fs::write(&path, &keygen).unwrap();
        let from_file = KeyConfig {
            secret: None,
            secret_file: Some(path),
            ..inline(slashed, KeyAlgorithm::HmacSha256)
        };
        let inline_key = inline(slashed, KeyAlgorithm::HmacSha256).load().unwrap();
        // The same key: the same MAC over the same message.
        let sign = |k: crate::dns::tsig::Key| {
            let mut m = vec![0u8; 12];
            let mut signer = crate::dns::tsig::Signer::request(std::sync::Arc::new(k));
            signer.sign_at(&mut m, 1_700_000_000);
            signer.last_mac().to_vec()
        };
        assert_eq!(sign(from_file.load().unwrap()), sign(inline_key));
    }

    /// Knot's `keymgr -t xfr hmac-sha256` output, as printed, and the
    /// `ALGORITHM:NAME:SECRET` form; anything else is refused with the forms
    /// a file may take named.
    #[test]
    fn a_secret_file_may_hold_knots_key_list_or_the_dig_form() {
        let alg = Algorithm::HmacSha256;
        let secret = "8w355/ncNkjYlb4U2YYl35pQ9I3j+V9IToRO83pDWDw=";
        let keymgr = format!(
            "# hmac-sha256:xfr:{secret}\nkey:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {secret}\n"
        );
        assert_eq!(file_secret(&keymgr, "xfr", alg).unwrap(), secret);
        let two = format!(
            "key:\n  - id: other\n    algorithm: hmac-sha512\n    secret: AAAA\n  - id: \"xfr.\"\n    algorithm: hmac-sha256\n    secret: \"{secret}\"\n"
        );
        assert_eq!(file_secret(&two, "xfr", alg).unwrap(), secret);
        let e = file_secret(&keymgr, "xfr", Algorithm::HmacSha512).unwrap_err();
        assert!(e.contains("algorithm hmac-sha256"), "{e}");
        assert_eq!(
            file_secret(&format!("hmac-sha256:xfr:{secret}\n"), "xfr", alg).unwrap(),
            secret
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.key");
        std::fs::write(&path, "xfr = \"not a key\"\n").unwrap();
        let junk = KeyConfig {
            secret: None,
            secret_file: Some(path),
            ..inline(secret, KeyAlgorithm::HmacSha256)
        };
        let e = junk.load().unwrap_err();
        assert!(
            e.msg.contains("keymgr -t") && e.msg.contains("tsig-keygen"),
            "{e}"
        );
        assert!(
            !e.msg.contains("not a key"),
            "the file's text is not echoed"
        );
    }

    const TS: &str = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\nxfr_key = \"xfr\"\n";

    fn problems(text: &str) -> Vec<String> {
        match crate::config::Config::diagnose(text, std::path::Path::new("c.toml")) {
            Ok(_) => Vec::new(),
            Err(all) => all.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn config_keys_are_checked_at_their_lines() {
        let good = format!("{TS}\n[[key]]\nname = \"xfr\"\nsecret = \"{B64_32}\"\n");
        assert_eq!(problems(&good), Vec::<String>::new());
        let c = crate::config::Config::from_toml(&good, std::path::Path::new("c.toml")).unwrap();
        assert_eq!(c.xfr_key_of(&c.ts[0]).map(|k| k.name.as_str()), Some("xfr"));
        assert!(!format!("{c:?}").contains(B64_32), "Debug hides the secret");

        assert_eq!(
            problems(TS),
            ["c.toml:5: ts.xfr_key: names key \"xfr\", which is not a [[key]] (there is none)"]
        );
        let text = format!(
            "{TS}\n[[key]]\nname = \"xfr\"\nsecret = \"{B64_32}\"\n\n[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha512\"\nsecret = \"!!\"\n"
        );
        assert_eq!(
            problems(&text),
            [
                "c.toml:12: key.name: duplicate key name \"xfr\"",
                "c.toml:14: key.secret: the secret is not base64 (invalid length at 0)",
            ]
        );
        let text = format!(
            "{TS}\n[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-md5\"\nsecret = \"{B64_32}\"\n"
        );
        assert_eq!(
            problems(&text),
            [
                "c.toml:9: key.algorithm: expected one of hmac-sha256, hmac-sha384, hmac-sha512, got \"hmac-md5\""
            ]
        );
        let text = format!("{TS}\n[[key]]\nname = \"xfr\"\nsecret_file = \"no/such/file\"\n");
        let got = problems(&text);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("c.toml:9: key.secret_file: no/such/file: cannot read"),
            "{got:?}"
        );
    }

    /// A backend's `notify_key` names a `[[key]]`; a
    /// backend that is a `[[ts]]` of the file follows its `xfr_key` (and may
    /// name no other key); another backend's NOTIFYs need no key unless it
    /// names one.
    #[test]
    fn a_backend_s_notify_key_is_its_own_or_its_table_server_s() {
        let ls = |backends: &str| {
            format!(
                "[ls]\nlisten = [\"127.0.0.1:5300\"]\n\n{backends}\n{TS}\n[[key]]\nname = \"xfr\"\nsecret = \"{B64_32}\"\n\n\
                 [[key]]\nname = \"nsd\"\nsecret = \"{B64_32}\"\n"
            )
        };
        let backends = "[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n\n\
                        [[ls.backend]]\nname = \"nsd\"\naddr = \"192.0.2.53:53\"\nnotify_key = \"nsd\"\n\n\
                        [[ls.backend]]\nname = \"other\"\naddr = \"192.0.2.54:53\"\n";
        let c = crate::config::Config::from_toml(&ls(backends), std::path::Path::new("c.toml"))
            .unwrap();
        let keys: Vec<(&str, &str)> =
            c.ls.as_ref()
                .unwrap()
                .notify_tsig
                .iter()
                .map(|(b, k)| (b.as_str(), k.name.as_str()))
                .collect();
        assert_eq!(keys, [("ts1", "xfr"), ("nsd", "nsd")]);

        let wrong = backends.replace("notify_key = \"nsd\"", "notify_key = \"nope\"");
        let got = problems(&ls(&wrong));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains(
                "ls.backend.notify_key: names key \"nope\", which is not a [[key]] (keys: xfr, nsd)"
            ),
            "{got:?}"
        );
        let other = backends.replace(
            "addr = \"127.0.0.1:5301\"\n",
            "addr = \"127.0.0.1:5301\"\nnotify_key = \"nsd\"\n",
        );
        let got = problems(&ls(&other));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("c.toml:7: ls.backend.notify_key: backend \"ts1\" is table server \"ts1\" of this file, which signs its NOTIFYs with its xfr_key \"xfr\""),
            "{got:?}"
        );
    }

    #[test]
    fn a_relative_secret_file_is_read_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("xfr.key"),
            format!("key \"xfr\" {{ algorithm hmac-sha256; secret \"{B64_32}\"; }};\n"),
        )
        .unwrap();
        let text = format!("{TS}\n[[key]]\nname = \"xfr\"\nsecret_file = \"xfr.key\"\n");
        let c = crate::config::Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
        assert_eq!(
            c.key[0].secret_file.as_deref(),
            Some(dir.path().join("xfr.key").as_path())
        );
        assert_eq!(c.key[0].load().unwrap().name(), "xfr");
    }
}
