//! `$GENERATE` in a TS's master files, against BIND:
//!
//! - The records a zone's `$GENERATE` lines make (every base of the
//!   `${offset,width,base}` modifier, steps, a literal `\$`, a quoted data
//!   read again, TTL and class given, names and data of several types) are
//!   the ones `named-compilezone` makes of the same file: the zone as
//!   transferred by AXFR from the TS is the zone BIND prints, record for
//!   record (`$$` is a `$` there).
//! - A `$GENERATE` the TS cannot make (a range too big, backwards, a step
//!   of 0, a bad modifier, a number below 0, a record it makes that is bad,
//!   a line whose records would fill hundreds of megabytes) is refused at its
//!   `file:line`, quickly (nothing is made for a range of four billion).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dnslb::ts::load_catalog_noting;

use crate::kit::{self, ZoneDir, or_skip, start_ts, ts_settings};

const TEST: &str = "zonefile_generate";

const ZONE: &str = r#"$ORIGIN gen.test.
$TTL 300
@ SOA ns hostmaster 7 3600 600 86400 300
@ NS ns
ns A 192.0.2.1
$GENERATE 1-40 host$ A 10.0.0.$
$GENERATE 0-20/4 ${10,3,d}-x A 10.0.1.$
$GENERATE 250-260 ${0,4,x}.h AAAA 2001:db8::${0,0,X}
$GENERATE 0-300/7 ${0,3,n}.rev PTR host$.gen.test.
$GENERATE 16-18 ${0,5,N}.nn PTR n$
$GENERATE 1-3 t$ TXT "a $ b \$"
$GENERATE 1-3 m$ 60 IN MX "10 mail$"
$GENERATE 1-3 c$ CNAME ${-1}
$GENERATE 8-10 o${0,3,o} IN 120 CNAME x
$GENERATE 1-2 d$ DNAME other$.example.
$GENERATE 5-6 ${-5,2,d}zero A 10.9.9.$
$GENERATE 1-1 q$ TXT "x\"y z\"" ; a comment
$GENERATE 1-2 sub$ NS ns$.elsewhere.example.
$GENERATE 1-2 dollar$$${0,1} A 10.9.8.$
"#;

/// `text`'s records one a line, fields split by single spaces, owners
/// lower-cased, sorted: the form both outputs are compared in.
fn records(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let mut fields: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
            if let Some(owner) = fields.first_mut() {
                *owner = owner.to_ascii_lowercase();
            }
            fields.join(" ")
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

#[tokio::test]
async fn generated_records_are_the_ones_bind_makes() {
    let [named_compilezone, _dig] = or_skip!(kit::need(TEST, ["named-compilezone", "dig"]));
    let dir = ZoneDir::new();
    let file = dir.write("gen.zone", ZONE);
    let bind = kit::run_tool(
        kit::path_str(&named_compilezone),
        &[
            "-q",
            "-i",
            "none",
            "-o",
            "-",
            "gen.test",
            kit::path_str(&file),
        ],
    );
    assert!(
        bind.status.success(),
        "named-compilezone refused the zone: {}{}",
        bind.stdout,
        bind.stderr
    );
    let ts = start_ts(ts_settings(vec![file])).await;
    let args = ["AXFR", "gen.test", "+nocmd", "+nostats", "+nocomments"];
    let dig_args = kit::tool_args(ts.addr, &args);
    // `dig` waits on this thread's TS: off the runtime.
    let axfr = tokio::task::spawn_blocking(move || kit::run_tool("dig", &dig_args))
        .await
        .unwrap();
    assert!(axfr.status.success(), "dig AXFR: {}", axfr.stderr);
    let ours = records(&kit::axfr_zone_file(&axfr.stdout));
    let theirs = records(&bind.stdout);
    // Enough made to mean something: 40 + 6 + 11 + 43 + 3 * 6 + 2 + 2 + 1 + 2.
    assert!(theirs.len() > 120, "BIND made only {}", theirs.len());
    let only_ours: Vec<_> = ours.iter().filter(|r| !theirs.contains(r)).collect();
    let only_theirs: Vec<_> = theirs.iter().filter(|r| !ours.contains(r)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "the TS serves, BIND does not:\n{only_ours:#?}\nBIND makes, the TS does not serve:\n{only_theirs:#?}"
    );
    ts.stop().await;
}

/// The error a zone of `body` after the head fails to load with (its file
/// shown as `gen.zone`).
fn refused(body: &str) -> String {
    let dir = ZoneDir::new();
    let head = "$ORIGIN gen.test.\n$TTL 300\n@ SOA ns h 1 7200 3600 1209600 300\n@ NS ns\n";
    let file: PathBuf = dir.write("gen.zone", &format!("{head}{body}"));
    let mut warnings = Vec::new();
    let started = Instant::now();
    let loaded = load_catalog_noting(&kit::ts_settings(vec![file]), 1, &mut warnings);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusing took {:?}",
        started.elapsed()
    );
    match loaded {
        Ok(_) => panic!("loaded, but must be refused:\n{body}"),
        Err(e) => e
            .to_string()
            .replace(&format!("{}/", dir.path().display()), ""),
    }
}

#[test]
fn a_generate_the_ts_cannot_make_is_refused_at_its_line() {
    // One line of long data that would make 330 MB.
    let long = format!("$GENERATE 0-65535 h$ TXT \"{}\"\n", "x".repeat(5_000));
    for (body, says) in [
        (long.as_str(), "bytes of records made in this zone"),
        (
            "$GENERATE 0-4294967295 h$ A 10.0.0.1\n",
            "over the 65536 allowed",
        ),
        ("$GENERATE 0-65536 h$ A 10.0.0.1\n", "65537 records"),
        ("$GENERATE 10-1 h$ A 10.0.0.1\n", "runs backwards"),
        ("$GENERATE 1-10/0 h$ A 10.0.0.1\n", "step of 0"),
        ("$GENERATE 1-x h$ A 10.0.0.1\n", "bad range"),
        ("$GENERATE 1-2 h${1,2,q} A 10.0.0.1\n", "bad modifier"),
        ("$GENERATE 1-2 h${1 A 10.0.0.1\n", "no '}'"),
        ("$GENERATE 1-2 h${0,300} A 10.0.0.1\n", "width over 255"),
        ("$GENERATE 1-2 h${-2} A 10.0.0.1\n", "below 0"),
        ("$GENERATE 1-2 h$\n", "needs a range"),
        ("$GENERATE 1-2 h$ TXT \"a\nb\"\n", "more than one entry"),
        ("$GENERATE 250-260 h$ A 10.0.0.$\n", "at 256"),
        ("$GENERATE 1-2 h${0,70} A 10.0.0.1\n", "at 1"),
    ] {
        let err = refused(body);
        assert!(
            err.contains("gen.zone:5:") && err.contains(says),
            "{body:?} refused with {err:?}, not at gen.zone:5 saying {says:?}"
        );
    }
}
