//! Key material with ring: key pairs made, loaded from the private and public
//! halves BIND's files hold, and used to sign; the key tag (RFC 4034
//! Appendix B) and the DS digest (RFC 4509).
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};

use crate::config::DnssecAlgorithm;

/// Bytes of a private key: the P-256 scalar, or the Ed25519 seed.
pub(super) const PRIVATE_LEN: usize = 32;

/// A key pair that signs.
pub(super) enum KeyPair {
    /// ECDSA P-256 with SHA-256; signing draws a nonce from the generator.
    Ecdsa(EcdsaKeyPair, SystemRandom),
    /// Ed25519.
    Ed25519(Ed25519KeyPair),
}

impl KeyPair {
    /// The pair of `private` (as BIND's `PrivateKey:` holds it) and `public`
    /// (as the DNSKEY holds it: X||Y for ECDSA).
    ///
    /// # Errors
    /// ring refuses the pair (its reason): not a key of the algorithm, or
    /// halves that do not match.
    pub(super) fn from_halves(
        algorithm: DnssecAlgorithm,
        private: &[u8],
        public: &[u8],
    ) -> Result<KeyPair, String> {
        match algorithm {
            DnssecAlgorithm::EcdsaP256Sha256 => {
                // ring takes the uncompressed point: 0x04, X, Y.
                let mut point = Vec::with_capacity(1 + public.len());
                point.push(4);
                point.extend_from_slice(public);
                let rng = SystemRandom::new();
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    &rng,
                )
                .map(|pair| KeyPair::Ecdsa(pair, rng))
                .map_err(|e| e.to_string())
            }
            DnssecAlgorithm::Ed25519 => Ed25519KeyPair::from_seed_and_public_key(private, public)
                .map(KeyPair::Ed25519)
                .map_err(|e| e.to_string()),
        }
    }

    /// A new key of `algorithm`: (private half, public half as the DNSKEY
    /// holds it), or `None` if the system's random generator fails.
    pub(super) fn generate(algorithm: DnssecAlgorithm) -> Option<(Vec<u8>, Vec<u8>)> {
        let rng = SystemRandom::new();
        match algorithm {
            DnssecAlgorithm::EcdsaP256Sha256 => {
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .ok()?;
                let private = pkcs8_ec_scalar(doc.as_ref())?.to_vec();
                // Without the leading 0x04 of the uncompressed point.
                let public = pair.public_key().as_ref().get(1..)?.to_vec();
                Some((private, public))
            }
            DnssecAlgorithm::Ed25519 => {
                let mut seed = [0u8; PRIVATE_LEN];
                rng.fill(&mut seed).ok()?;
                let pair = Ed25519KeyPair::from_seed_unchecked(&seed).ok()?;
                Some((seed.to_vec(), pair.public_key().as_ref().to_vec()))
            }
        }
    }

    /// The signature of `data` (`None` if ring fails).
    pub(super) fn sign(&self, data: &[u8]) -> Option<Vec<u8>> {
        match self {
            KeyPair::Ecdsa(pair, rng) => pair.sign(rng, data).ok().map(|s| s.as_ref().to_vec()),
            KeyPair::Ed25519(pair) => Some(pair.sign(data).as_ref().to_vec()),
        }
    }
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B): its bytes summed as
/// 16-bit words, the carry folded in once.
pub(crate) fn key_tag(rdata: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, &b) in rdata.iter().enumerate() {
        acc += if i % 2 == 0 {
            u32::from(b) << 8
        } else {
            u32::from(b)
        };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

/// The DS RDATA with digest type 2 (SHA-256, RFC 4509) of the key with `tag`
/// and DNSKEY `rdata`, owned by `owner_wire_lower`.
pub(super) fn ds_sha256(tag: u16, rdata: &[u8], owner_wire_lower: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(owner_wire_lower);
    ctx.update(rdata);
    let mut out = Vec::with_capacity(4 + 32);
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(rdata.get(3).copied().unwrap_or(0));
    out.push(2);
    out.extend_from_slice(ctx.finish().as_ref());
    out
}

/// The DER element at the start of `der`: (tag, contents, what follows).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
        if bytes.is_empty() || bytes.len() > 2 {
            return None;
        }
        let len = bytes.iter().fold(0, |n, &b| n << 8 | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The private scalar of a PKCS#8 (RFC 5958) EC key: the `privateKey` octet
/// string of the `ECPrivateKey` (RFC 5915) inside the document's own.
fn pkcs8_ec_scalar(doc: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTETS: u8 = 0x04;
    let expect = |der, tag| der_element(der).filter(|e| e.0 == tag);
    let (_, info, _) = expect(doc, SEQUENCE)?;
    let (_, _version, rest) = expect(info, INTEGER)?;
    let (_, _algorithm, rest) = expect(rest, SEQUENCE)?;
    let (_, ec_key, _) = expect(rest, OCTETS)?;
    let (_, ec_key, _) = expect(ec_key, SEQUENCE)?;
    let (_, _version, rest) = expect(ec_key, INTEGER)?;
    let (_, scalar, _) = expect(rest, OCTETS)?;
    (scalar.len() == PRIVATE_LEN).then_some(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tag_of_rfc_4034_example_dnskey() {
        // The DNSKEY of RFC 4034 §5.4's DS example (dskey.example.com.) has tag 60485.
        let key = data_encoding::BASE64
            .decode(
                b"AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD9\
                  9WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbt\
                  G9DMBmADjFDc2w/rljwvFw==",
            )
            .unwrap();
        let mut rdata = vec![1, 0, 3, 5];
        rdata.extend_from_slice(&key);
        assert_eq!(key_tag(&rdata), 60485);
        // Its DS (digest type 1 in the RFC) is not SHA-256; the SHA-256 one
        // differs only in the digest: the fixed part is tag, algorithm, type.
        let owner = b"\x05dskey\x07example\x03com\x00";
        assert_eq!(ds_sha256(60485, &rdata, owner)[..4], [0xec, 0x45, 5, 2]);
    }

    #[test]
    fn generated_keys_load_back_and_sign() {
        for algorithm in DnssecAlgorithm::ALL.iter().copied() {
            let (private, public) = KeyPair::generate(algorithm).unwrap();
            assert_eq!(private.len(), PRIVATE_LEN);
            let want = if algorithm == DnssecAlgorithm::Ed25519 {
                32
            } else {
                64
            };
            assert_eq!(public.len(), want);
            let pair = KeyPair::from_halves(algorithm, &private, &public).unwrap();
            assert_eq!(pair.sign(b"data").unwrap().len(), 64);
            // Another key's public half does not match this private half.
            let (_, other) = KeyPair::generate(algorithm).unwrap();
            assert!(KeyPair::from_halves(algorithm, &private, &other).is_err());
        }
    }

    #[test]
    fn der_walk_refuses_truncated_documents() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let doc = doc.as_ref();
        assert!(pkcs8_ec_scalar(doc).is_some());
        for cut in 0..doc.len() {
            assert_eq!(pkcs8_ec_scalar(&doc[..cut]), None, "cut at {cut}");
        }
    }
}
