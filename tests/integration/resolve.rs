//! `dnslb resolve` as a library: the batch client against an in-process TS and against
//! servers that stay silent or are not there.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dnslb::resolve::{
    self, Outcome, ResolveError, ResolveOptions, Summary, format_line, resolve_all,
};
use tokio::net::UdpSocket;

use hickory_proto::rr::RecordType;

use crate::harness::{ZoneDir, query, start_ts, ts_settings, udp};

const TABLE: &str = "\
www.example.com 192.0.2.1 A
two.example.com 192.0.2.10 A
two.example.com 192.0.2.11 A
alias.example.com www.example.com CNAME
v6only.example.com 2001:db8::1 AAAA
";

fn opts(server: SocketAddr) -> ResolveOptions {
    ResolveOptions {
        timeout: Duration::from_secs(2),
        ..ResolveOptions::new(server)
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The output text `run` would write for `list`.
fn render(list: &[&str], outcomes: &[Outcome]) -> String {
    list.iter()
        .zip(outcomes)
        .map(|(n, o)| format_line(n, o) + "\n")
        .collect()
}

#[tokio::test]
async fn answers_come_back_in_input_order_spelled_as_given() {
    let dir = ZoneDir::new();
    let ts = start_ts(ts_settings(vec![dir.write("t.txt", TABLE)])).await;

    let input = "\
# hosts to check
WwW.Example.COM
  two.example.com  

missing.example.com
alias.example.com
v6only.example.com
www.example.com.
WWW.EXAMPLE.COM
";
    let in_path = dir.write("in.txt", input);
    let out_path = dir.path().join("out.txt");
    let summary = resolve::run(Some(&in_path), Some(&out_path), opts(ts.addr))
        .await
        .unwrap();

    let expected = "\
WwW.Example.COM 192.0.2.1 A
two.example.com 192.0.2.10 A
two.example.com 192.0.2.11 A
missing.example.com - Error:HOST NOT FOUND
alias.example.com 192.0.2.1 A
v6only.example.com - Error:HOST NOT FOUND
www.example.com. 192.0.2.1 A
WWW.EXAMPLE.COM 192.0.2.1 A
";
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), expected);
    assert_eq!(
        summary,
        Summary {
            total: 7,
            found: 5,
            not_found: 2,
            timed_out: 0,
            failed: 0
        }
    );
    ts.stop().await;
}

#[tokio::test]
async fn outcomes_match_the_table() {
    let dir = ZoneDir::new();
    let ts = start_ts(ts_settings(vec![dir.write("t.txt", TABLE)])).await;
    let list = [
        "two.example.com",
        "Alias.Example.Com",
        "nope.example.com",
        "v6only.example.com",
    ];
    let outcomes = resolve_all(names(&list), &opts(ts.addr)).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Addresses(vec![
                Ipv4Addr::new(192, 0, 2, 10),
                Ipv4Addr::new(192, 0, 2, 11)
            ]),
            Outcome::Addresses(vec![Ipv4Addr::new(192, 0, 2, 1)]),
            Outcome::NotFound,
            Outcome::NotFound,
        ]
    );
    ts.stop().await;
}

#[tokio::test]
async fn many_names_keep_input_order_with_bounded_concurrency() {
    let dir = ZoneDir::new();
    let table: String = (0..250)
        .map(|i| format!("h{i}.example.com 10.0.{}.{} A\n", i / 256, i % 256))
        .collect();
    let ts = start_ts(ts_settings(vec![dir.write("t.txt", &table)])).await;

    // 500 names: 250 present, each followed later by a missing one, in a scrambled order.
    let list: Vec<String> = (0..500)
        .map(|k| {
            let i = (k * 7) % 500;
            if i < 250 {
                format!("h{i}.example.com")
            } else {
                format!("gone{i}.example.com")
            }
        })
        .collect();
    let o = ResolveOptions {
        concurrency: 16,
        ..opts(ts.addr)
    };
    let outcomes = resolve_all(list.clone(), &o).await.unwrap();
    assert_eq!(outcomes.len(), 500);
    for (name, outcome) in list.iter().zip(&outcomes) {
        let expected = match name.strip_prefix('h') {
            Some(rest) => {
                let i: u32 = rest.trim_end_matches(".example.com").parse().unwrap();
                Outcome::Addresses(vec![Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8)])
            }
            None => Outcome::NotFound,
        };
        assert_eq!(outcome, &expected, "{name}");
    }
    ts.stop().await;
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    let dir = ZoneDir::new();
    // 120 A records do not fit in a 1232-byte UDP answer.
    let table: String = (0..120)
        .map(|i| format!("big.example.com 198.51.100.{i} A\n"))
        .collect();
    let ts = start_ts(ts_settings(vec![dir.write("t.txt", &table)])).await;
    let over_udp = udp(
        ts.addr,
        &query("big.example.com", RecordType::A, Some(1232)),
    )
    .await;
    assert!(
        over_udp.metadata.truncation,
        "the test needs a truncated UDP answer"
    );
    let outcomes = resolve_all(names(&["big.example.com"]), &opts(ts.addr))
        .await
        .unwrap();
    let Outcome::Addresses(addrs) = &outcomes[0] else {
        panic!("expected addresses, got {:?}", outcomes[0]);
    };
    assert_eq!(addrs.len(), 120);
    assert!(addrs.contains(&Ipv4Addr::new(198, 51, 100, 119)));
    ts.stop().await;
}

#[tokio::test]
async fn a_silent_server_gives_timeouts_and_not_found_lines() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        let mut seen = 0usize;
        while silent.recv_from(&mut buf).await.is_ok() {
            seen += 1;
        }
        seen
    });

    let o = ResolveOptions {
        timeout: Duration::from_millis(200),
        retries: 1,
        ..ResolveOptions::new(addr)
    };
    let list = ["a.example.com", "B.example.com"];
    let started = std::time::Instant::now();
    let outcomes = resolve_all(names(&list), &o).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(outcomes, vec![Outcome::TimedOut, Outcome::TimedOut]);
    assert_eq!(
        render(&list, &outcomes),
        "a.example.com - Error:HOST NOT FOUND\nB.example.com - Error:HOST NOT FOUND\n"
    );
    assert_eq!(Summary::tally(&outcomes).timed_out, 2);
    reader.abort();
}

#[tokio::test]
async fn at_most_concurrency_queries_are_in_flight() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while silent.recv_from(&mut buf).await.is_ok() {}
    });
    // 16 silent names, 4 at a time, 100 ms each: 4 waves, so at least 400 ms.
    let o = ResolveOptions {
        concurrency: 4,
        timeout: Duration::from_millis(100),
        retries: 0,
        ..ResolveOptions::new(addr)
    };
    let list: Vec<String> = (0..16).map(|i| format!("n{i}.example.com")).collect();
    let started = std::time::Instant::now();
    let outcomes = resolve_all(list, &o).await.unwrap();
    let took = started.elapsed();
    assert!(outcomes.iter().all(|o| *o == Outcome::TimedOut));
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    reader.abort();
}

#[tokio::test]
async fn nothing_listening_is_no_server() {
    let addr = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let err = resolve_all(names(&["a.example.com", "b.example.com"]), &opts(addr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResolveError::NoServer(a) if a == addr),
        "{err:?}"
    );

    let dir = ZoneDir::new();
    let input = dir.write("in.txt", "a.example.com\n");
    let out = dir.path().join("out.txt");
    let err = resolve::run(Some(&input), Some(&out), opts(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::NoServer(_)), "{err:?}");
}

#[tokio::test]
async fn a_bad_line_is_an_error_naming_it_and_nothing_is_written() {
    let dir = ZoneDir::new();
    let input = dir.write("in.txt", "ok.example.com\n# fine\nnot a host\n");
    let out = dir.path().join("out.txt");
    // No server is needed: the input is checked before any query.
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = resolve::run(Some(&input), Some(&out), opts(addr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResolveError::BadLine { line: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3: ", input.display())),
        "{text}"
    );
    assert!(text.contains("'not a host'"), "{text}");
    assert!(!out.exists());

    let err = resolve_all(names(&["ok.example", "bad..name"]), &opts(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::BadName { .. }), "{err:?}");
}

#[tokio::test]
async fn unreadable_input_and_unwritable_output_are_errors() {
    let dir = ZoneDir::new();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let missing = dir.path().join("missing.txt");
    let err = resolve::run(Some(&missing), None, opts(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Read { .. }), "{err:?}");

    let input = dir.write("in.txt", "a.example.com\n");
    let out = dir.path().join("no-such-dir").join("out.txt");
    let err = resolve::run(Some(&input), Some(&out), opts(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Write { .. }), "{err:?}");
}

#[tokio::test]
async fn an_empty_input_writes_nothing_and_succeeds() {
    let dir = ZoneDir::new();
    let input = dir.write("in.txt", "# nothing\n\n");
    let out = dir.path().join("out.txt");
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let summary = resolve::run(Some(&input), Some(&out), opts(addr))
        .await
        .unwrap();
    assert_eq!(summary, Summary::default());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
}
