//! Tests of the signer: RRSIGs made and kept, NSEC and NSEC3 chains, what a
//! re-signing changes.
use super::super::fixtures::zone;
use super::super::fixtures::*;
use super::super::nsec3::Hashed;
use super::super::store::be16;
use super::super::transfer::diff;
use super::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// A CSK made with ring, for tests.
pub(crate) struct TestKey {
    pair: EcdsaKeyPair,
    rdata: Vec<u8>,
}

impl TestKey {
    pub(crate) fn new() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut rdata = vec![1, 1, 3, 13];
        rdata.extend_from_slice(&pair.public_key().as_ref()[1..]);
        TestKey { pair, rdata }
    }

    pub(crate) fn keys(&self) -> Keys<'_> {
        Keys {
            dnskeys: vec![self.rdata.clone()],
            for_keys: vec![self],
            for_data: vec![self],
            id: vec![self.tag()],
            next_event: None,
        }
    }
}

impl RrsetSigner for TestKey {
    fn tag(&self) -> u16 {
        crate::ts::dnssec::keys::key_tag(&self.rdata)
    }
    fn algorithm(&self) -> u8 {
        13
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = self.pair.sign(&SystemRandom::new(), data);
        sig.map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError::Crypto { tag: self.tag() })
    }
}

#[test]
fn each_name_is_linked_at_load_to_the_nsec3_records_hashing_finds() {
    let z = zone(vec![
        rec("test.", a("192.0.2.9")),
        rec("A.test.", a("192.0.2.1")),
        rec("b.c.test.", a("192.0.2.2")),
        rec("*.w.test.", a("192.0.2.3")),
    ]);
    let key = TestKey::new();
    let s = super::zone(&z, None, &key.keys(), Denial::Nsec3, 7, 1_800_000_000).unwrap();
    let chain = s.nsec3.as_deref().unwrap();
    let owner = |h: Option<Hashed<'_>>| match h {
        Some(Hashed::Matches(e)) => (e.owner.to_vec(), true),
        Some(Hashed::Covered(e)) => (e.owner.to_vec(), false),
        None => (Vec::new(), false),
    };
    // The apex, a name, an empty non-terminal, a wildcard and its parent.
    let names: [&[u8]; 5] = [
        b"\x04test\x00",
        b"\x01a\x04test\x00",
        b"\x01c\x04test\x00",
        b"\x01*\x01w\x04test\x00",
        b"\x01w\x04test\x00",
    ];
    for name in names {
        let (own, wildcard) = chain.linked(&s.store, name).expect("linked");
        let found = owner(chain.find(&s.store, name));
        assert_eq!((own.owner.to_vec(), true), found, "{name:?}");
        let mut child = b"\x01*".to_vec();
        child.extend_from_slice(name);
        assert_eq!(
            wildcard.owner.to_vec(),
            owner(chain.find(&s.store, &child)).0
        );
    }
    assert!(
        chain.linked(&s.store, b"\x01x\x04test\x00").is_none(),
        "absent"
    );
}

#[test]
fn an_rrsig_verifies_over_the_rrset_as_rfc_4034_spells_the_signed_data() {
    let z = zone(vec![
        rec("A.test.", a("192.0.2.1")),
        rec("a.test.", a("192.0.2.2")),
    ]);
    let key = TestKey::new();
    let s = super::zone(&z, None, &key.keys(), Denial::Nsec, 7, 1_800_000_000).unwrap();
    assert_eq!(s.serial(), 7);
    let e = s.store.get(b"\x01a\x04test\x00").unwrap();
    let sig = e.sigs(1).unwrap().records().next().unwrap();
    let rdata = &sig[10..];
    // Type covered A, algorithm 13, 2 labels, original TTL 300,
    // expiration and inception as asked, the key's tag, signer the root.
    assert_eq!(&rdata[..4], &[0, 1, 13, 2]);
    assert_eq!(be32(rdata, 4), 300);
    assert_eq!(be32(rdata, 8), 1_800_000_000 + VALIDITY);
    assert_eq!(be32(rdata, 12), 1_800_000_000 - BACKDATE);
    assert_eq!(u16::from_be_bytes([rdata[16], rdata[17]]), key.tag());
    assert_eq!(rdata[18], 0, "signer: the root zone");
    let (head, signature) = rdata.split_at(19);
    // RFC 4034 §3.1.8.1: the RRSIG RDATA but its signature, then each
    // record, owner lower-cased, in canonical order.
    let mut data = head.to_vec();
    for addr in [[192, 0, 2, 1], [192, 0, 2, 2]] {
        data.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04");
        data.extend_from_slice(&addr);
    }
    let public = [&[4u8][..], &key.rdata[4..]].concat();
    let verifier =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public);
    assert!(verifier.verify(&data, signature).is_ok());
    data[head.len() + 20] ^= 1;
    assert!(verifier.verify(&data, signature).is_err());
}

/// An RRSIG's RDATA as [`keeps`] reads it: algorithm, validity, tag.
fn sig(algorithm: u8, tag: u16, inception: u32, expiration: u32) -> Vec<u8> {
    let mut rdata = vec![0, 1, algorithm, 2, 0, 0, 1, 44];
    rdata.extend_from_slice(&expiration.to_be_bytes());
    rdata.extend_from_slice(&inception.to_be_bytes());
    rdata.extend_from_slice(&tag.to_be_bytes());
    rdata.extend_from_slice(&[0, 1, 2, 3]);
    rdata
}

#[test]
fn an_unchanged_rrset_keeps_a_fresh_signature_and_anything_else_is_signed_anew() {
    let now = 1_800_000_000;
    let made = now - 86_400;
    let fresh = sig(13, 7, made - BACKDATE, made + VALIDITY);
    let signers = [(13, 7)];
    let kept = |unchanged, sigs: &[&Vec<u8>], signers: &[(u8, u16)], at| {
        keeps(unchanged, sigs.iter().map(|s| s.as_slice()), signers, at)
    };
    assert!(kept(true, &[&fresh], &signers, now), "unchanged, fresh");
    assert!(!kept(false, &[&fresh], &signers, now), "the RRset changed");
    // Due: a tenth of its life left, or within the pre-refresh hour of it.
    let due = refresh_point(made - BACKDATE, made + VALIDITY);
    assert!(kept(true, &[&fresh], &signers, due - PRE_REFRESH - 1));
    assert!(!kept(true, &[&fresh], &signers, due - PRE_REFRESH));
    assert!(!kept(true, &[&fresh], &signers, due));
    assert!(
        !kept(true, &[&fresh], &signers, made + VALIDITY + 1),
        "expired"
    );
    assert!(
        !kept(true, &[&fresh], &signers, made - 2 * BACKDATE),
        "not valid yet"
    );
    // Made by other keys than those signing now: a key rolled, added or
    // retired, or another algorithm.
    assert!(!kept(true, &[&fresh], &[(13, 8)], now));
    assert!(!kept(true, &[&fresh], &[(13, 7), (13, 8)], now));
    assert!(!kept(
        true,
        &[&fresh, &sig(13, 8, made, made + VALIDITY)],
        &signers,
        now
    ));
    assert!(!kept(true, &[&fresh], &[(15, 7)], now));
    assert!(!kept(true, &[], &signers, now), "no signature");
    assert!(
        !kept(true, &[&fresh[..10].to_vec()], &signers, now),
        "truncated"
    );
    // Two keys, each fresh: kept.
    let other = sig(13, 8, made, made + VALIDITY);
    assert!(kept(true, &[&other, &fresh], &[(13, 7), (13, 8)], now));
}

#[test]
fn signing_over_the_previous_version_renews_only_what_changed_and_the_soa() {
    let records = |b: &str| {
        vec![
            rec("test.", a("192.0.2.9")),
            rec("a.test.", a("192.0.2.1")),
            rec("b.test.", a(b)),
            rec("c.test.", a("192.0.2.3")),
        ]
    };
    let key = TestKey::new();
    let t0 = 1_800_000_000;
    let first = super::zone(
        &zone(records("192.0.2.2")),
        None,
        &key.keys(),
        Denial::Nsec,
        7,
        t0,
    )
    .unwrap();
    let t1 = t0 + 86_400;
    let data = zone(records("192.0.2.99"));
    let second = super::zone(&data, Some(&first), &key.keys(), Denial::Nsec, 8, t1).unwrap();
    let (deleted, added) = diff(&first, &second, usize::MAX).unwrap();
    let moved = |list: &crate::ts::zone::rrlist::RrList| -> Vec<(Vec<u8>, u16)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|rr| {
                let (owner, rest) = crate::ts::zone::rrlist::split_rr(rr).unwrap();
                let rtype = u16::from_be_bytes([rest[0], rest[1]]);
                let covered = if rtype == RRSIG {
                    be16(rest, 10)
                } else {
                    rtype
                };
                (owner.to_ascii_lowercase(), covered)
            })
            .collect();
        v.sort();
        v
    };
    // The changed address and its RRSIG, the SOA's RRSIG (the SOA
    // itself travels apart): nothing of a, c, the NSEC chain or DNSKEY.
    let want = vec![
        (b"\x00".to_vec(), SOA),
        (b"\x01b\x04test\x00".to_vec(), 1),
        (b"\x01b\x04test\x00".to_vec(), 1),
    ];
    assert_eq!(moved(&deleted), want);
    assert_eq!(moved(&added), want);
    // The oldest signature is the first signing's: the zone is due
    // when it is.
    let (old, new) = (first.signature().unwrap(), second.signature().unwrap());
    assert_eq!(
        (new.inception, new.expiration),
        (old.inception, old.expiration)
    );
    assert_eq!(new.refresh_at(), old.refresh_at());
    // Signed afresh (no previous version), or at the refresh point,
    // every signature is new.
    let whole = super::zone(&data, None, &key.keys(), Denial::Nsec, 8, t1).unwrap();
    assert!(diff(&first, &whole, usize::MAX).unwrap().0.len() > 10);
    // At the first signing's refresh point, its signatures are made
    // anew; the second's (b's address) is kept.
    let due = old.refresh_at();
    let refreshed = super::zone(&second, Some(&second), &key.keys(), Denial::Nsec, 9, due).unwrap();
    let (gone, _) = diff(&second, &refreshed, usize::MAX).unwrap();
    let sigs: usize = second
        .store
        .entries()
        .flat_map(|e| e.sig_sets().collect::<Vec<_>>())
        .map(|s| usize::from(s.count))
        .sum();
    let rrsigs = gone
        .iter()
        .filter(|rr| crate::ts::zone::rrlist::split_rr(rr).unwrap().1[..2] == RRSIG.to_be_bytes())
        .count();
    assert_eq!(
        (rrsigs, gone.len()),
        (sigs - 1, sigs - 1),
        "{:?}",
        moved(&gone)
    );
    let renewed = refreshed.signature().unwrap();
    assert_eq!(renewed.inception, t1 - BACKDATE, "b's is the oldest now");
    assert!(renewed.refresh_at() > due + PRE_REFRESH);
}

#[test]
fn a_name_added_under_nsec3_renews_its_own_and_its_predecessors_nsec3_and_nothing_else() {
    let names = ["test.", "a.test.", "b.test.", "c.test."];
    let key = TestKey::new();
    let t0 = 1_800_000_000;
    let records = |extra: Option<&str>| {
        let all = names.iter().copied().chain(extra);
        zone(all.map(|n| rec(n, a("192.0.2.1"))).collect())
    };
    let first = super::zone(&records(None), None, &key.keys(), Denial::Nsec3, 7, t0).unwrap();
    let second = super::zone(
        &records(Some("d.test.")),
        Some(&first),
        &key.keys(),
        Denial::Nsec3,
        8,
        t0 + 60,
    )
    .unwrap();
    let (deleted, added) = diff(&first, &second, usize::MAX).unwrap();
    // Each record's type, an RRSIG's the type it covers.
    let types = |list: &crate::ts::zone::rrlist::RrList| -> Vec<u16> {
        let mut v: Vec<u16> = list
            .iter()
            .map(|rr| {
                let (_, rest) = crate::ts::zone::rrlist::split_rr(rr).unwrap();
                match be16(rest, 0) {
                    RRSIG => be16(rest, 10),
                    t => t,
                }
            })
            .collect();
        v.sort_unstable();
        v
    };
    // The SOA's RRSIG, the NSEC3 before d's in hash order (its next hash
    // moved) and its RRSIG; added besides: d's address, its NSEC3 and
    // their RRSIGs.
    assert_eq!(types(&deleted), [SOA, NSEC3, NSEC3]);
    assert_eq!(types(&added), [1, 1, SOA, NSEC3, NSEC3, NSEC3, NSEC3]);
}

#[test]
fn a_zone_is_signed_again_when_its_keys_do_something_else_or_its_signatures_fail() {
    let t0 = 1_800_000_000;
    let s = Signature {
        data: [0; 32],
        tags: vec![1, 7, 1, 7, 1, 7],
        inception: t0 - BACKDATE,
        expiration: t0 + VALIDITY,
        latest_inception: t0 - BACKDATE,
        denial: Denial::Nsec,
        key_event: Some(t0 + 600),
    };
    let same = s.tags.clone();
    // The keys do the same, only their timing moved: kept, even past the
    // key event read at the signing.
    assert!(!s.stale(&same, t0));
    assert!(!s.stale(&same, t0 + 600));
    // A key published, activated or retired: signed again.
    assert!(s.stale(&[2, 7, 9, 1, 7, 1, 7], t0));
    assert!(s.stale(&[1, 7, 1, 7, 1, 9], t0));
    // Its oldest signature at its refresh point.
    let due = refresh_point(s.inception, s.expiration);
    assert!(!s.stale(&same, due - 1));
    assert!(s.stale(&same, due));
    // The clock stepped back behind a signature's inception (not valid
    // yet to a validator): signed again.
    assert!(!s.stale(&same, t0 - BACKDATE));
    assert!(s.stale(&same, t0 - BACKDATE - 1));
}
