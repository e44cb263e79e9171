//! TSIG verification (`dnslb::dns::tsig`) on hostile requests and answers.
//!
//! Input: one control byte choosing the key's algorithm (hmac-sha256, -384,
//! -512; the key `xfr`, the secret of the seeds) and the clock, then a DNS
//! message. Properties: no panic, no hang; a message left to the ordinary
//! checks (unreadable before any TSIG) has no TSIG to find; a request that verifies loses
//! exactly its TSIG when stripped; a rejected one's error answer carries a
//! well-formed TSIG with that error; an answer to a request of ours is
//! checked without panic.
#![no_main]

use dnslb::dns::tsig::{self, Algorithm, Checked, Key};
use libfuzzer_sys::fuzz_target;

/// The secret `dig -y hmac-sha256:xfr:c2VjcmV0...MTI=` signed the seeds with.
const SECRET: &[u8] = b"secretsecretsecretsecretsecret12";

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, msg)) = data.split_first() else {
        return;
    };
    let alg = Algorithm::ALL[usize::from(ctl % 3)];
    let key = Key::new("xfr", alg, SECRET).expect("key");
    // The seeds were signed at 0x6b059d88; some inputs are checked then.
    let now = if ctl & 0x80 == 0 { 0x6b05_9d88 } else { dnslb::clock::unix_now() };
    match tsig::verify_request(msg, &key, now) {
        Checked::Unsigned => assert!(matches!(tsig::find(msg), Ok(None))),
        // Not walkable before any TSIG: no TSIG can be read from it either.
        Checked::Unreadable => assert!(tsig::find(msg).is_err()),
        Checked::Signed(v) => {
            let plain = v.unsigned(msg);
            assert_eq!(plain.len(), v.start);
            assert!(matches!(tsig::find(&plain), Ok(None)));
        }
        Checked::Rejected(r) => {
            if let (Some(error), Some(plain)) = (r.error, r.unsigned(msg)) {
                let mut answer = plain.get(..12).unwrap_or_default().to_vec();
                if answer.len() == 12 {
                    answer[4..12].fill(0);
                    r.answer(Some(&key), &mut answer, now);
                    let t = tsig::find(&answer).expect("our TSIG is well formed");
                    assert_eq!(t.map(|t| t.error), Some(error.code()));
                }
            }
        }
    }
    let _ = tsig::verify_response(msg, &key, &[0u8; 32], now);
});
