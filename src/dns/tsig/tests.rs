//! RFC 8945's rules on requests and answers, and a request signed by `dig`.
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::*;

const SECRET: &[u8] = b"secretsecretsecretsecretsecret12";

fn key(alg: Algorithm) -> Arc<Key> {
    Arc::new(Key::new("xfr", alg, SECRET).unwrap())
}

fn query(qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        qtype,
    ));
    m.to_vec().unwrap()
}

fn signed_query(key: &Arc<Key>, at: u64) -> (Vec<u8>, Vec<u8>) {
    let mut q = query(RecordType::AXFR);
    let mut s = Signer::request(key.clone());
    s.sign_at(&mut q, at);
    let mac = s.last_mac().to_vec();
    (q, mac)
}

/// A query signed with `k` and checked by `k`: what it verified as.
fn verified(k: &Arc<Key>) -> (Vec<u8>, Vec<u8>, Verified) {
    let (q, mac) = signed_query(k, NOW);
    let Checked::Signed(v) = verify_request(&q, k, NOW) else {
        panic!("our own signature does not verify");
    };
    (q, mac, v)
}

fn rejected(c: Checked) -> Rejected {
    match c {
        Checked::Rejected(r) => r,
        other => panic!("not rejected: {other:?}"),
    }
}

const NOW: u64 = 1_790_000_000;

/// A query `dig -y hmac-sha256:xfr:c2VjcmV0...MTI= example.test SOA` sent
/// (with an OPT and a cookie before the TSIG), captured off the wire.
const DIG_QUERY: &str = "195a01200001000000000002076578616d706c650474657374000006000100002904d000000000000c000a0008939ce2c37258026c037866720000fa00ff00000000003d0b686d61632d7368613235360000006b059d88012c00201e39c14aae9f8b7ab93cf2ecbd3d6c9716da61a5d7481fb8343cb9527cbd9b67195a00000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_request_signed_by_dig_verifies_and_a_changed_byte_does_not() {
    let raw = hex(DIG_QUERY);
    let r = find(&raw).unwrap().unwrap();
    assert_eq!(r.key_name, b"\x03xfr\x00");
    assert_eq!(r.mac.len(), 32);
    let at = r.time_signed;
    let k = key(Algorithm::HmacSha256);
    let Checked::Signed(v) = verify_request(&raw, &k, at + 10) else {
        panic!("dig's signature does not verify");
    };
    assert_eq!(v.mac, r.mac);
    // The request as if unsigned: the OPT kept, the TSIG gone.
    let plain = v.unsigned(&raw);
    assert_eq!(&plain[10..12], &[0, 1]);
    assert!(find(&plain).unwrap().is_none());

    let mut bad = raw.clone();
    bad[21] ^= 1; // a letter of the question
    assert_eq!(
        rejected(verify_request(&bad, &k, at)).error,
        Some(TsigError::BadSig)
    );
    let wrong = Arc::new(Key::new("xfr", Algorithm::HmacSha256, b"another secret").unwrap());
    assert_eq!(
        rejected(verify_request(&raw, &wrong, at)).error,
        Some(TsigError::BadSig)
    );
    let other = Arc::new(Key::new("other", Algorithm::HmacSha256, SECRET).unwrap());
    assert_eq!(
        rejected(verify_request(&raw, &other, at)).error,
        Some(TsigError::BadKey)
    );
    assert_eq!(
        rejected(verify_request(&raw, &key(Algorithm::HmacSha512), at)).error,
        Some(TsigError::BadKey),
        "the algorithm differs from the key's"
    );
    assert_eq!(
        rejected(verify_request(&raw, &k, at + 301)).error,
        Some(TsigError::BadTime)
    );
    assert!(matches!(
        verify_request(&raw, &k, at - 300),
        Checked::Signed(_)
    ));
}

#[test]
fn our_signature_verifies_for_every_algorithm_and_the_key_name_is_case_blind() {
    for alg in Algorithm::ALL {
        let k = key(alg);
        let (q, mac) = signed_query(&k, NOW);
        assert_eq!(mac.len(), alg.mac_len());
        let Checked::Signed(v) = verify_request(&q, &k, NOW) else {
            panic!("{alg}");
        };
        assert_eq!(v.mac, mac);
    }
    let k = key(Algorithm::HmacSha256);
    let (mut q, _) = signed_query(&k, NOW);
    let r = find(&q).unwrap().unwrap();
    let at = r.start + 1;
    q[at..at + 3].copy_from_slice(b"XFR");
    assert!(matches!(verify_request(&q, &k, NOW), Checked::Signed(_)));
    let unsigned = query(RecordType::AXFR);
    assert_eq!(verify_request(&unsigned, &k, NOW), Checked::Unsigned);
}

#[test]
fn the_tsig_must_be_the_one_last_record_class_any_ttl_0() {
    let k = key(Algorithm::HmacSha256);
    let (q, _) = signed_query(&k, NOW);
    let r = find(&q).unwrap().unwrap();
    let fixed = r.start + 5; // "\x03xfr\x00"
    let formerr = |m: &[u8]| rejected(verify_request(m, &k, NOW)).error.is_none();

    let mut class = q.clone();
    class[fixed + 3] = 1; // class IN
    assert!(formerr(&class), "class");
    let mut ttl = q.clone();
    ttl[fixed + 7] = 1;
    assert!(formerr(&ttl), "ttl");

    // Two TSIGs.
    let mut two = q.clone();
    two.extend_from_slice(&q[r.start..]);
    two[11] = 2;
    assert!(formerr(&two), "two");
    // A TSIG followed by another record (an OPT).
    let mut notlast = q.clone();
    notlast.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    notlast[11] = 2;
    assert!(formerr(&notlast), "not last");
    // Trailing bytes.
    let mut trailing = q.clone();
    trailing.push(0);
    assert!(formerr(&trailing), "trailing");
    // In the answer section.
    let mut answer = q.clone();
    answer[7] = 1;
    answer[11] = 0;
    assert!(formerr(&answer), "answer section");
}

/// `q` with its TSIG's RDATA replaced by `rdata`.
fn with_rdata(q: &[u8], rdata: &[u8]) -> Vec<u8> {
    let r = find(q).unwrap().unwrap();
    let rdlen_at = r.start + 5 + 8;
    let mut out = q[..rdlen_at].to_vec();
    out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

fn rdata(alg: &[u8], mac: &[u8], other: &[u8], other_len: u16) -> Vec<u8> {
    let mut d = alg.to_vec();
    d.extend_from_slice(&record::time48(NOW));
    d.extend_from_slice(&FUDGE.to_be_bytes());
    d.extend_from_slice(&u16::try_from(mac.len()).unwrap().to_be_bytes());
    d.extend_from_slice(mac);
    d.extend_from_slice(&[0x12, 0x34, 0, 0]);
    d.extend_from_slice(&other_len.to_be_bytes());
    d.extend_from_slice(other);
    d
}

#[test]
fn hostile_records_are_formerr_or_badkey_never_a_panic() {
    let k = key(Algorithm::HmacSha256);
    let (q, _) = signed_query(&k, NOW);
    let alg = b"\x0bhmac-sha256\x00";
    let check = |d: &[u8]| rejected(verify_request(&with_rdata(&q, d), &k, NOW)).error;
    // A MAC longer than the hash, or shorter than max(10, hash/2).
    assert_eq!(check(&rdata(alg, &[0; 33], &[], 0)), None);
    assert_eq!(check(&rdata(alg, &[0; 15], &[], 0)), None);
    assert_eq!(check(&rdata(alg, &[], &[], 0)), None);
    // A MAC size past the RDATA; other data longer than what is left.
    let mut cut = rdata(alg, &[0; 32], &[], 0);
    cut.truncate(alg.len() + 10 + 5);
    assert_eq!(check(&cut), None);
    assert_eq!(check(&rdata(alg, &[0; 32], &[1, 2], 60_000)), None);
    // Huge other data, well formed: read, then the MAC fails.
    let big = vec![7u8; 40_000];
    assert_eq!(
        check(&rdata(alg, &[0; 32], &big, 40_000)),
        Some(TsigError::BadSig)
    );
    // A compressed algorithm name; an unknown algorithm.
    assert_eq!(check(&rdata(b"\xc0\x0c", &[0; 32], &[], 0)), None);
    assert_eq!(
        check(&rdata(
            b"\x08hmac-md5\x07sig-alg\x03reg\x03int\x00",
            &[0; 16],
            &[],
            0
        )),
        Some(TsigError::BadKey)
    );
    // A right-sized but wrong truncated MAC is BADSIG; the right one BADTRUNC.
    assert_eq!(
        check(&rdata(alg, &[0; 16], &[], 0)),
        Some(TsigError::BadSig)
    );
    for n in 0..q.len() {
        let _ = verify_request(&q[..n], &k, NOW);
    }
}

/// A query signed with `k` at [`NOW`], its MAC cut to 16 bytes: re-signed
/// by hand (what the MAC covers does not include the MAC itself).
fn truncated_mac(k: &Arc<Key>) -> Vec<u8> {
    let (q, mac) = signed_query(k, NOW);
    let r = find(&q).unwrap().unwrap();
    let mut d = r.algorithm.to_vec();
    d.extend_from_slice(&record::time48(NOW));
    d.extend_from_slice(&FUDGE.to_be_bytes());
    d.extend_from_slice(&16u16.to_be_bytes());
    d.extend_from_slice(&mac[..16]);
    d.extend_from_slice(&r.original_id.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0]);
    with_rdata(&q, &d)
}

#[test]
fn a_truncated_mac_that_verifies_is_badtrunc_and_answered_signed() {
    let k = key(Algorithm::HmacSha256);
    let cut = truncated_mac(&k);
    let rej = rejected(verify_request(&cut, &k, NOW));
    assert_eq!(rej.error, Some(TsigError::BadTrunc));
    let mut answer = answer_to(&rej.unsigned(&cut).unwrap());
    rej.answer(Some(&k), &mut answer, NOW);
    let t = find(&answer).unwrap().unwrap();
    assert_eq!((t.error, t.mac.len()), (22, 32));
}

/// A NOTAUTH answer to the request `q` (header and question).
fn answer_to(q: &[u8]) -> Vec<u8> {
    let mut a = q.to_vec();
    a[2] |= 0x80;
    a[3] = (a[3] & 0xf0) | 9;
    a[10..12].copy_from_slice(&[0, 0]);
    a
}

#[test]
fn error_answers_carry_the_tsig_error_signed_only_for_badtime() {
    let k = key(Algorithm::HmacSha256);
    let (q, mac) = signed_query(&k, NOW);
    // BADTIME: signed on the request's MAC, the request's time signed, the
    // server's time in other data; the client verifies it.
    let late = NOW + 600;
    let rej = rejected(verify_request(&q, &k, late));
    assert_eq!(rej.error, Some(TsigError::BadTime));
    let mut a = answer_to(&rej.unsigned(&q).unwrap());
    rej.answer(Some(&k), &mut a, late);
    let t = find(&a).unwrap().unwrap();
    assert_eq!((t.error, t.time_signed), (18, NOW));
    assert_eq!(t.other, &record::time48(late));
    assert_eq!(
        verify_response(&a, &k, &mac, NOW),
        Ok(ResponseCheck::Signed(18))
    );
    // BADSIG: unsigned (no MAC), naming the request's key.
    let wrong = Arc::new(Key::new("xfr", Algorithm::HmacSha256, b"other").unwrap());
    let rej = rejected(verify_request(&q, &wrong, NOW));
    let mut a = answer_to(&rej.unsigned(&q).unwrap());
    rej.answer(Some(&wrong), &mut a, NOW);
    let t = find(&a).unwrap().unwrap();
    assert_eq!(
        (t.error, t.mac.len(), t.key_name),
        (16, 0, &b"\x03xfr\x00"[..])
    );
    assert_eq!(&a[10..12], &[0, 1], "ARCOUNT counts the TSIG");
    // To the client it says why, and vouches for nothing.
    assert_eq!(
        verify_response(&a, &k, &mac, NOW),
        Ok(ResponseCheck::Unverified(16))
    );
}

#[test]
fn every_message_of_an_answer_is_signed_on_the_one_before() {
    let k = key(Algorithm::HmacSha384);
    let (q, _, v) = verified(&k);
    let mut signer = Signer::answer(k.clone(), &v);
    let msgs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut m = answer_to(&v.unsigned(&q));
            m[3] &= 0xf0;
            m.push(i); // stands for the records (the MAC does not parse them)
            signer.sign_at(&mut m, NOW + u64::from(i));
            m
        })
        .collect();
    // The chain as a client checks it: the first message on the request's
    // MAC with every variable, each later one on the one before, timers only.
    let mut prior = v.mac.clone();
    for (i, m) in msgs.iter().enumerate() {
        let tsig_len = 5 + 10 + 13 + 6 + 2 + 2 + 48 + 6;
        let start = m.len() - tsig_len;
        let head = signed_header(&m[..], u16::from_be_bytes([m[0], m[1]])).unwrap();
        let input = MacInput {
            prior: Some(&prior),
            time_signed: NOW + i as u64,
            fudge: FUDGE,
            full: (i == 0).then_some((0, &[][..])),
        };
        let data = mac_data(&k, &head, &m[12..start], &input);
        let mac = &m[m.len() - 6 - 48..m.len() - 6];
        assert!(mac_matches(&k, &data, mac), "message {i}");
        prior = mac.to_vec();
    }
}

#[test]
fn an_answer_to_our_notify_verifies_signed_or_unsigned() {
    let k = key(Algorithm::HmacSha512);
    let (q, mac, v) = verified(&k);
    let mut a = answer_to(&v.unsigned(&q));
    a[3] &= 0xf0;
    assert_eq!(
        verify_response(&a, &k, &mac, NOW),
        Ok(ResponseCheck::Unsigned)
    );
    Signer::answer(k.clone(), &v).sign_at(&mut a, NOW);
    assert_eq!(
        verify_response(&a, &k, &mac, NOW),
        Ok(ResponseCheck::Signed(0))
    );
    assert_eq!(
        verify_response(&a, &k, &[0; 64], NOW),
        Err(TsigError::BadSig),
        "signed on another request"
    );
}

#[test]
fn key_debug_hides_the_secret_and_names_are_checked() {
    let k = Key::new("Xfr.Example.", Algorithm::HmacSha256, SECRET).unwrap();
    let shown = format!("{k:?}");
    assert!(shown.contains("Xfr.Example.") && !shown.contains("secret"));
    assert_eq!(k.name, b"\x03xfr\x07example\x00");
    assert!(Key::new("a..b", Algorithm::HmacSha256, SECRET).is_err());
    assert!(Key::new(&"x".repeat(64), Algorithm::HmacSha256, SECRET).is_err());
    assert_eq!(
        Algorithm::from_name("HMAC-SHA512."),
        Some(Algorithm::HmacSha512)
    );
    assert_eq!(Algorithm::from_name("hmac-md5"), None);
}

#[test]
fn the_room_kept_for_a_tsig_is_what_signing_adds() {
    for alg in Algorithm::ALL {
        for name in ["xfr", "transfer.key.example."] {
            let k = Arc::new(Key::new(name, alg, SECRET).unwrap());
            let mut m = query(RecordType::SOA);
            let before = m.len();
            Signer::request(k.clone()).sign_at(&mut m, NOW);
            assert_eq!(m.len() - before, k.tsig_len(), "{name} {alg}");
        }
    }
    // hmac-sha256 with the key `xfr`: 76 bytes.
    assert_eq!(key(Algorithm::HmacSha256).tsig_len(), 76);
}

#[test]
fn a_message_that_cannot_be_walked_before_any_tsig_is_no_tsig_matter() {
    let k = key(Algorithm::HmacSha256);
    // Unsigned, ARCOUNT says one record and there is none.
    let mut lies = query(RecordType::SOA);
    lies[11] = 1;
    assert_eq!(verify_request(&lies, &k, NOW), Checked::Unreadable);
    // An answer count that lies.
    let mut an = query(RecordType::SOA);
    an[7] = 1;
    assert_eq!(verify_request(&an, &k, NOW), Checked::Unreadable);
    let (q, _) = signed_query(&k, NOW);
    // A question running past the end; a header cut short.
    assert_eq!(verify_request(&q[..15], &k, NOW), Checked::Unreadable);
    assert_eq!(verify_request(&q[..5], &k, NOW), Checked::Unreadable);
    // Once the TSIG is seen, a fault in it is the TSIG's: FORMERR.
    let mut trailing = q.clone();
    trailing.push(0);
    assert_eq!(rejected(verify_request(&trailing, &k, NOW)).error, None);
}

#[test]
fn the_time_is_checked_before_the_truncation() {
    // RFC 8945 §5.2.3 (BADTIME) comes before §5.2.4 (BADTRUNC).
    let k = key(Algorithm::HmacSha256);
    let cut = truncated_mac(&k);
    let late = NOW + u64::from(FUDGE) + 1;
    let rej = rejected(verify_request(&cut, &k, late));
    assert_eq!(rej.error, Some(TsigError::BadTime));
}

/// The messages of a transfer answer to `v`, each signed by `k`.
fn signed_stream(k: &Arc<Key>, v: &Verified, n: usize) -> Vec<Vec<u8>> {
    let mut signer = Signer::answer(k.clone(), v);
    (0..n)
        .map(|i| {
            let mut m = query(RecordType::AXFR);
            m[2] |= 0x80;
            m[1] = u8::try_from(i).unwrap();
            signer.sign_at(&mut m, NOW);
            m
        })
        .collect()
}

#[test]
fn a_stream_of_signed_messages_verifies_message_by_message() {
    let k = key(Algorithm::HmacSha256);
    let (_, mac, v) = verified(&k);
    let msgs = signed_stream(&k, &v, 4);
    let mut sv = StreamVerifier::new(k.clone(), &mac);
    assert!(!sv.ends_signed(), "nothing seen yet");
    for m in &msgs {
        assert_eq!(sv.check(m, NOW), Ok(true));
    }
    assert!(sv.ends_signed());
    // One byte changed in the third message: refused there.
    let mut sv = StreamVerifier::new(k.clone(), &mac);
    let mut bad = msgs.clone();
    let at = bad[2].len() - k.tsig_len() - 1;
    bad[2][at] ^= 1;
    assert_eq!(sv.check(&bad[0], NOW), Ok(true));
    assert_eq!(sv.check(&bad[1], NOW), Ok(true));
    assert_eq!(sv.check(&bad[2], NOW), Err(TsigError::BadSig));
    // Out of order: the chain of MACs breaks.
    let mut sv = StreamVerifier::new(k.clone(), &mac);
    assert_eq!(sv.check(&msgs[1], NOW), Err(TsigError::BadSig));
    // Another key, another request's MAC, a time past the fudge.
    let other = Arc::new(
        Key::new(
            "xfr",
            Algorithm::HmacSha256,
            b"another secret, 32 bytes long..",
        )
        .unwrap(),
    );
    assert!(
        StreamVerifier::new(other, &mac)
            .check(&msgs[0], NOW)
            .is_err()
    );
    assert!(
        StreamVerifier::new(k.clone(), &[0; 32])
            .check(&msgs[0], NOW)
            .is_err()
    );
    let late = NOW + u64::from(FUDGE) + 1;
    assert_eq!(
        StreamVerifier::new(k.clone(), &mac).check(&msgs[0], late),
        Err(TsigError::BadTime)
    );
}

#[test]
fn a_stream_may_not_start_or_end_unsigned() {
    let k = key(Algorithm::HmacSha256);
    let (_, mac, _) = verified(&k);
    let plain = query(RecordType::AXFR);
    let mut sv = StreamVerifier::new(k.clone(), &mac);
    assert_eq!(
        sv.check(&plain, NOW),
        Err(TsigError::BadSig),
        "first unsigned"
    );
    let (_, mac, v) = verified(&k);
    let msgs = signed_stream(&k, &v, 1);
    let mut sv = StreamVerifier::new(k.clone(), &mac);
    assert_eq!(sv.check(&msgs[0], NOW), Ok(true));
    assert_eq!(sv.check(&plain, NOW), Ok(false), "an unsigned one between");
    assert!(!sv.ends_signed(), "the last seen is unsigned");
}
