//! A key's two files as BIND writes them: `K<zone>+<alg>+<tag>.key` (comment
//! lines, then the DNSKEY record) and `.private` (`Field: value` lines), read
//! tolerantly and written as `dnssec-keygen` does, timing metadata included.
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hickory_proto::rr::Name;

use super::error::DnssecKeyError;
use super::material::{self, KeyPair, PRIVATE_LEN};
use super::meta::{SEP_FLAG, Timing, ZONE_FLAG, algorithm_number};
use crate::config::DnssecAlgorithm;
use crate::ts::dnssec::presigned::stamp;
use crate::ts::zonefile::rrsig_time;

/// What is read of one key: its pair, DNSKEY RDATA and timing.
pub(super) type Loaded = (KeyPair, Vec<u8>, Timing);

/// An exclusive lock on the keys folder, held until dropped.
pub(super) struct Lock(#[allow(dead_code)] File);

/// Locks `dir` (an advisory lock on the folder itself), waiting for another
/// process that holds it.
pub(super) fn lock(dir: &Path) -> std::io::Result<Lock> {
    let file = File::open(dir)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(Lock(file))
}

/// The zone as key files name it: lower case, with the trailing dot (`.`
/// for the root).
pub(in crate::ts::dnssec) fn origin_text(origin: &Name) -> String {
    let mut text = origin.to_lowercase().to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// `K<origin>+<alg>+`, the start of the name of every key file of the zone
/// and algorithm.
fn prefix(origin: &Name, algorithm: DnssecAlgorithm) -> String {
    format!(
        "K{}+{:03}+",
        origin_text(origin),
        algorithm_number(algorithm)
    )
}

/// BIND's name of the algorithm (`Algorithm: 13 (ECDSAP256SHA256)`).
fn mnemonic(algorithm: DnssecAlgorithm) -> &'static str {
    match algorithm {
        DnssecAlgorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
        DnssecAlgorithm::Ed25519 => "ED25519",
    }
}

/// The algorithm the TS signs with of DNSSEC algorithm `number`, if any.
pub(super) fn supported(number: u8) -> Option<DnssecAlgorithm> {
    DnssecAlgorithm::ALL
        .iter()
        .copied()
        .find(|&a| algorithm_number(a) == number)
}

/// Every key of `origin` in `dir`, by file name, of every algorithm the TS
/// signs with (an algorithm rollover has keys of two). A key of another
/// algorithm (RSA from an older signer) that is still published, or will
/// be, at `now` is refused: the TS cannot sign with it, and a DNSKEY RRset
/// holding an algorithm that signs nothing breaks an algorithm rollover
/// (RFC 6781 §4.1.4); one past its Delete is left alone. A `.private`
/// file without its `.key` is not a key (BIND's tools find keys by their
/// `.key` file).
pub(super) fn read_keys(
    dir: &Path,
    origin: &Name,
    now: u32,
) -> Result<Vec<Loaded>, DnssecKeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DnssecKeyError::Io { path, source }
    };
    let prefix = format!("K{}+", origin_text(origin));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&prefix));
        // `NNN+TTTTT`: the algorithm and the tag.
        let rest = name
            .strip_suffix(".key")
            .and_then(|b| b.get(prefix.len()..));
        let Some(rest) = rest.filter(|_| ours) else {
            continue;
        };
        let Some((alg, tag)) = rest.split_once('+') else {
            continue;
        };
        let digits = |t: &str, n| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        if digits(alg, 3)
            && digits(tag, 5)
            && let Ok(number) = alg.parse::<u8>()
        {
            names.push((name.to_string(), number));
        }
    }
    names.sort();
    let mut keys = Vec::with_capacity(names.len());
    for (name, number) in names {
        let key_path = dir.join(&name);
        let private_path = key_path.with_extension("private");
        let key_text = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let private_text = match std::fs::read_to_string(&private_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DnssecKeyError::NoPrivate {
                    path: key_path,
                    private: private_path,
                });
            }
            Err(e) => return Err(io(&private_path)(e)),
        };
        let Some(algorithm) = supported(number) else {
            let timing = foreign_timing(&key_path, &key_text, &private_text)?;
            if timing.delete.is_none_or(|t| t > now) {
                return Err(DnssecKeyError::Unsupported {
                    path: key_path,
                    algorithm: number,
                });
            }
            continue;
        };
        let (rdata, key_timing) = parse_key(&key_path, &key_text, origin, algorithm)?;
        let (private, timing) = parse_private(&private_path, &private_text, algorithm)?;
        let public = rdata.get(4..).unwrap_or_default();
        let pair = KeyPair::from_halves(algorithm, &private, public).map_err(|what| {
            DnssecKeyError::Rejected {
                path: private_path.clone(),
                what,
            }
        })?;
        // The .private file's metadata is BIND's own; the .key's comments
        // stand in for what it lacks.
        let timing = Timing {
            publish: timing.publish.or(key_timing.publish),
            activate: timing.activate.or(key_timing.activate),
            inactive: timing.inactive.or(key_timing.inactive),
            delete: timing.delete.or(key_timing.delete),
        };
        keys.push((pair, rdata, timing));
    }
    Ok(keys)
}

/// The timing of a key of an algorithm the TS does not sign with: its
/// `.private` file's, the `.key` file's comments standing in for what it
/// lacks (only the Delete time matters: whether the key is gone).
fn foreign_timing(
    key_path: &Path,
    key_text: &str,
    private_text: &str,
) -> Result<Timing, DnssecKeyError> {
    let mut timing = Timing::default();
    let private_path = key_path.with_extension("private");
    for (i, line) in private_text.lines().enumerate() {
        if let Some((field, value)) = line.split_once(':') {
            timing_field(
                &private_path,
                i + 1,
                field.trim(),
                value.trim(),
                &mut timing,
            )?;
        }
    }
    for (i, line) in key_text.lines().enumerate() {
        let comment = line.split_once(';').map_or("", |(_, c)| c);
        if let Some((field, value)) = comment.trim().split_once(": ") {
            let mut from_key = Timing::default();
            timing_field(key_path, i + 1, field, value, &mut from_key)?;
            timing.delete = timing.delete.or(from_key.delete);
        }
    }
    Ok(timing)
}

/// A `Field: value` timing line's field and time, if it is one.
fn timing_field(
    path: &Path,
    number: usize,
    field: &str,
    value: &str,
    timing: &mut Timing,
) -> Result<(), DnssecKeyError> {
    let slot = match field {
        "Publish" => &mut timing.publish,
        "Activate" => &mut timing.activate,
        "Inactive" => &mut timing.inactive,
        "Delete" => &mut timing.delete,
        _ => return Ok(()),
    };
    let word = value.split_whitespace().next().unwrap_or_default();
    let time = rrsig_time(word.as_bytes()).map_err(|_| DnssecKeyError::Syntax {
        path: path.to_path_buf(),
        line: number,
        what: format!("{field}: expected a time YYYYMMDDHHMMSS, got '{word}'"),
    })?;
    *slot = Some(time);
    Ok(())
}

/// The DNSKEY RDATA and the timing comments of a `.key` file: comment lines
/// (`; Publish: 20250101000000 (...)`), then `<origin> [ttl] [class] DNSKEY
/// <flags> 3 <alg> <base64 key, maybe split, maybe in parentheses>`.
fn parse_key(
    path: &Path,
    text: &str,
    origin: &Name,
    algorithm: DnssecAlgorithm,
) -> Result<(Vec<u8>, Timing), DnssecKeyError> {
    let mut timing = Timing::default();
    let mut words: Vec<&str> = Vec::new();
    let mut first_line = 0;
    for (i, line) in text.lines().enumerate() {
        let (data, comment) = line.split_once(';').unwrap_or((line, ""));
        if let Some((field, value)) = comment.trim().split_once(": ") {
            timing_field(path, i + 1, field, value, &mut timing)?;
        }
        let data = data.trim();
        if !data.is_empty() {
            if first_line == 0 {
                first_line = i + 1;
            }
            words.extend(data.split_whitespace().filter(|w| *w != "(" && *w != ")"));
        }
    }
    let bad = |what: String| DnssecKeyError::Syntax {
        path: path.to_path_buf(),
        line: first_line.max(1),
        what,
    };
    let words: Vec<String> = words.iter().map(|w| w.replace(['(', ')'], "")).collect();
    let Some(at) = words.iter().position(|w| w.eq_ignore_ascii_case("DNSKEY")) else {
        return Err(bad("no DNSKEY record".to_string()));
    };
    let owner = Name::from_ascii(&words[0]).ok().filter(|_| at >= 1);
    if owner.as_ref().is_none_or(|o| !o.is_fqdn() || o != origin) {
        let want = origin_text(origin);
        return Err(bad(format!(
            "expected a DNSKEY of {want}, got '{}'",
            words[0]
        )));
    }
    let fields = &words[at + 1..];
    let [flags, protocol, alg, key @ ..] = fields else {
        return Err(bad(
            "DNSKEY: expected flags, protocol, algorithm, key".into()
        ));
    };
    let number = algorithm_number(algorithm);
    let flags: u16 = flags
        .parse()
        .map_err(|_| bad(format!("DNSKEY: bad flags '{flags}'")))?;
    if flags & ZONE_FLAG == 0 || protocol != "3" || alg.parse::<u8>().ok() != Some(number) {
        return Err(bad(format!(
            "expected a zone key of algorithm {number} (flags 256 or 257, protocol 3), got \
             {flags} {protocol} {alg}"
        )));
    }
    let public = BASE64
        .decode(key.concat().as_bytes())
        .map_err(|_| bad("DNSKEY: bad base64 in the key".into()))?;
    let want = if algorithm == DnssecAlgorithm::Ed25519 {
        32
    } else {
        64
    };
    if public.len() != want {
        return Err(bad(format!(
            "DNSKEY: a key of algorithm {number} is {want} bytes, got {}",
            public.len()
        )));
    }
    let mut rdata = Vec::with_capacity(4 + public.len());
    rdata.extend_from_slice(&flags.to_be_bytes());
    rdata.extend_from_slice(&[3, number]);
    rdata.extend_from_slice(&public);
    Ok((rdata, timing))
}

/// The private key and timing of a `.private` file (`Field: value` lines).
fn parse_private(
    path: &Path,
    text: &str,
    algorithm: DnssecAlgorithm,
) -> Result<(Vec<u8>, Timing), DnssecKeyError> {
    let mut timing = Timing::default();
    let mut private = None;
    let bad = |line: usize, what: String| DnssecKeyError::Syntax {
        path: path.to_path_buf(),
        line,
        what,
    };
    for (i, line) in text.lines().enumerate() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match field.trim() {
            "Algorithm" => {
                let number = value.split_whitespace().next().unwrap_or_default();
                let want = algorithm_number(algorithm);
                if number.parse::<u8>().ok() != Some(want) {
                    return Err(bad(
                        i + 1,
                        format!("expected Algorithm {want}, got '{value}'"),
                    ));
                }
            }
            "PrivateKey" => {
                let key = BASE64
                    .decode(value.replace(' ', "").as_bytes())
                    .map_err(|_| bad(i + 1, "PrivateKey: bad base64".into()))?;
                let key = full_width(key, algorithm);
                if key.len() != PRIVATE_LEN {
                    let got = key.len();
                    let what = format!("PrivateKey: expected {PRIVATE_LEN} bytes, got {got}");
                    return Err(bad(i + 1, what));
                }
                private = Some(key);
            }
            field => timing_field(path, i + 1, field, value, &mut timing)?,
        }
    }
    let private = private.ok_or_else(|| bad(1, "no PrivateKey line".into()))?;
    Ok((private, timing))
}

/// An ECDSA private key at its full width: BIND writes the scalar as the
/// shortest big-endian integer (OpenSSL's `BN_bn2bin`), so one key in 256 has a
/// 31-byte `PrivateKey` (a leading zero byte left out); zeros in front give the
/// 32-byte scalar back. An Ed25519 key is a 32-byte seed, never shortened.
fn full_width(key: Vec<u8>, algorithm: DnssecAlgorithm) -> Vec<u8> {
    if algorithm != DnssecAlgorithm::EcdsaP256Sha256 || key.is_empty() || key.len() >= PRIVATE_LEN {
        return key;
    }
    let mut full = vec![0; PRIVATE_LEN - key.len()];
    full.extend_from_slice(&key);
    full
}

/// A time as BIND's comments show it beside the stamp: `Tue Nov 24 05:15:43 2026`.
fn ctime(secs: u32) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = stamp(secs);
    let month: usize = s[4..6].parse().unwrap_or(1);
    let day: u32 = s[6..8].parse().unwrap_or(1);
    format!(
        "{} {} {day:2} {}:{}:{} {}",
        DAYS[(secs / 86_400 % 7) as usize],
        MONTHS[month.clamp(1, 12) - 1],
        &s[8..10],
        &s[10..12],
        &s[12..14],
        &s[0..4]
    )
}

/// A new CSK (flags 257) of `algorithm`, published and active at `now`,
/// in memory: the key, and its private half as the `.private` file holds it.
pub(super) fn fresh_key(
    algorithm: DnssecAlgorithm,
    now: u32,
) -> Result<(Loaded, Vec<u8>), DnssecKeyError> {
    let (private, public) = KeyPair::generate(algorithm).ok_or(DnssecKeyError::Crypto {
        tag: 0,
        what: "making a key",
    })?;
    let number = algorithm_number(algorithm);
    let flags = ZONE_FLAG | SEP_FLAG;
    let mut rdata = Vec::with_capacity(4 + public.len());
    rdata.extend_from_slice(&flags.to_be_bytes());
    rdata.extend_from_slice(&[3, number]);
    rdata.extend_from_slice(&public);
    let pair = KeyPair::from_halves(algorithm, &private, &public).map_err(|what| {
        DnssecKeyError::Rejected {
            path: PathBuf::from("(a new key)"),
            what,
        }
    })?;
    let timing = Timing {
        publish: Some(now),
        activate: Some(now),
        ..Timing::default()
    };
    Ok(((pair, rdata, timing), private))
}

/// Makes a CSK (flags 257) of `origin` with `algorithm` in `dir`, created,
/// published and active at `now` ([`fresh_key`]), and writes its two files as
/// `dnssec-keygen -f KSK` does: the `.private` (mode 0600) first, so that no
/// `.key` is ever without it.
pub(super) fn create_key(
    dir: &Path,
    origin: &Name,
    algorithm: DnssecAlgorithm,
    now: u32,
) -> Result<Loaded, DnssecKeyError> {
    let (key, private) = fresh_key(algorithm, now)?;
    let (_, rdata, _) = &key;
    let public = rdata.get(4..).unwrap_or_default();
    let number = algorithm_number(algorithm);
    let flags = ZONE_FLAG | SEP_FLAG;
    let tag = material::key_tag(rdata);
    let base = format!("{}{tag:05}", prefix(origin, algorithm));
    let (private_path, key_path) = (dir.join(format!("{base}.private")), dir.join(base + ".key"));
    let (when, shown) = (stamp(now), ctime(now));
    let private_text = format!(
        "Private-key-format: v1.3\nAlgorithm: {number} ({})\nPrivateKey: {}\n\
         Created: {when}\nPublish: {when}\nActivate: {when}\n",
        mnemonic(algorithm),
        BASE64.encode(&private)
    );
    let zone = origin_text(origin);
    let key_text = format!(
        "; This is a key-signing key, keyid {tag}, for {zone}\n\
         ; Created: {when} ({shown})\n; Publish: {when} ({shown})\n\
         ; Activate: {when} ({shown})\n{zone} IN DNSKEY {flags} 3 {number} {}\n",
        BASE64.encode(public)
    );
    write_new(&private_path, &private_text, 0o600)?;
    write_new(&key_path, &key_text, 0o644)?;
    // The renames themselves survive a crash once the folder is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| DnssecKeyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(key)
}

/// Writes `text` into `path` whole or not at all: a temporary file with
/// `mode`, synced, then renamed into place.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), DnssecKeyError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let io = |source| DnssecKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.private` file's text as BIND writes it, with `private` as is.
    fn private_file(private: &[u8]) -> String {
        format!(
            "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: {}\n",
            BASE64.encode(private)
        )
    }

    #[test]
    fn a_bind_ecdsa_key_with_a_leading_zero_byte_left_out_loads() {
        // One key in 256 has a scalar starting with 0x00; BIND writes it in 31 bytes.
        let alg = DnssecAlgorithm::EcdsaP256Sha256;
        let (private, public) = (0..20_000)
            .find_map(|_| KeyPair::generate(alg).filter(|(p, _)| p[0] == 0))
            .expect("a key with a leading zero byte within 20,000 draws");
        let path = Path::new("Kexample.com.+013+00001.private");
        let (read, _) = parse_private(path, &private_file(&private[1..]), alg).unwrap();
        assert_eq!(read, private);
        assert!(KeyPair::from_halves(alg, &read, &public).is_ok());
        // The full width reads the same; a 30-byte scalar pads just as well;
        // 33 bytes are refused.
        let (full, _) = parse_private(path, &private_file(&private), alg).unwrap();
        assert_eq!(full, private);
        let err = parse_private(path, &private_file(&[1; 33]), alg).unwrap_err();
        assert!(
            err.to_string().contains("expected 32 bytes, got 33"),
            "{err}"
        );
        // An Ed25519 seed is never shortened: 31 bytes are refused.
        let text = private_file(&private[1..]).replace("13 (ECDSAP256SHA256)", "15 (ED25519)");
        let err = parse_private(path, &text, DnssecAlgorithm::Ed25519).unwrap_err();
        assert!(
            err.to_string().contains("expected 32 bytes, got 31"),
            "{err}"
        );
    }
}
