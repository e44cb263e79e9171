//! `dnslb resolve` as a library and as a process: the batch client against an
//! in-process TS and against servers that stay silent or are not there; the forms
//! of `-s`, bad input lines, the summary and the exit status.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use dnslb::resolve::{
    self, Outcome, ResolveError, ResolveOptions, ServerSpec, Summary, format_line, resolve_all,
};
use tokio::net::UdpSocket;

use hickory_proto::rr::RecordType;

use crate::kit::{Output, run_dnslb};
use crate::kit::{ZoneDir, query, start_ts, start_ts_table, ts_settings, udp};

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
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;

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
            failed: 0,
            invalid: 0,
        }
    );
    ts.stop().await;
}

#[tokio::test]
async fn outcomes_match_the_table() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
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
                Ipv4Addr::new(192, 0, 2, 10).into(),
                Ipv4Addr::new(192, 0, 2, 11).into()
            ]),
            Outcome::Addresses(vec![Ipv4Addr::new(192, 0, 2, 1).into()]),
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
    let ts = start_ts_table(&dir, "t.txt", &table).await;

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
                Outcome::Addresses(vec![
                    Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8).into(),
                ])
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
    let ts = start_ts_table(&dir, "t.txt", &table).await;
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
    assert!(addrs.contains(&Ipv4Addr::new(198, 51, 100, 119).into()));
    ts.stop().await;
}

#[tokio::test]
async fn a_silent_server_gives_timeouts_and_not_found_lines() {
    let (addr, reader) = silent_server().await;

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
    let _load = crate::kit::timed().await;
    let (addr, reader) = silent_server().await;
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
async fn a_bad_line_is_written_as_not_found_in_its_place_and_the_batch_goes_on() {
    // Was: a bad line ended the run before any query, with nothing written.
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let input = dir.write(
        "in.txt",
        "www.example.com\n# fine\nnot a host\nbad..name\ntwo.example.com\n",
    );
    let out = dir.path().join("out.txt");
    let summary = resolve::run(Some(&input), Some(&out), opts(ts.addr))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "www.example.com 192.0.2.1 A\n\
         not a host - Error:HOST NOT FOUND\n\
         bad..name - Error:HOST NOT FOUND\n\
         two.example.com 192.0.2.10 A\n\
         two.example.com 192.0.2.11 A\n"
    );
    assert_eq!(
        summary,
        Summary {
            total: 4,
            found: 2,
            invalid: 2,
            ..Summary::default()
        }
    );

    // The library call still refuses a bad name before sending anything.
    let err = resolve_all(names(&["ok.example", "bad..name"]), &opts(ts.addr))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::BadName { .. }), "{err:?}");
    ts.stop().await;
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

// ---------------------------------------------------------------------------
// The server as `-s` takes it, and `dnslb resolve` as a process: stderr, exit
// status.

/// `-s ADDR --timeout-ms TIMEOUT_MS --retries 0`.
fn one_try_args(addr: SocketAddr, timeout_ms: u64) -> Vec<String> {
    let (addr, timeout) = (addr.to_string(), timeout_ms.to_string());
    ["-s", &addr, "--timeout-ms", &timeout, "--retries", "0"]
        .map(String::from)
        .to_vec()
}

/// A UDP socket on 127.0.0.1 that reads every query and answers none: its
/// address, and the task reading (which returns how many it read if it
/// ever stops; abort it when done).
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<usize>) {
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
    (addr, reader)
}

/// Runs `dnslb resolve ARGS` with `stdin` (off the async runtime).
async fn dnslb_resolve(args: Vec<String>, stdin: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["resolve".to_owned()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_dnslb(
            &refs,
            Path::new("/"),
            stdin.map(str::as_bytes),
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap()
}

/// The stderr line of the summary.
fn summary_line(out: &Output) -> &str {
    let found: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("dnslb resolve: ") && l.contains(" lines in "))
        .collect();
    assert_eq!(found.len(), 1, "one summary line:\n{}", out.stderr);
    found[0]
}

#[tokio::test]
async fn the_server_can_be_a_host_name_or_an_address_without_a_port() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    // `localhost` comes from /etc/hosts: no query leaves the machine.
    let spec: ServerSpec = format!("localhost:{}", ts.addr.port()).parse().unwrap();
    assert!(matches!(spec, ServerSpec::Host { .. }));
    let outcomes = resolve_all(names(&["www.example.com"]), &ResolveOptions::new(spec))
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [Outcome::Addresses(vec![Ipv4Addr::new(192, 0, 2, 1).into()])]
    );
    ts.stop().await;

    // No port: 53. Nothing serves DNS on 127.0.0.3, and the error says where
    // the queries went.
    let spec: ServerSpec = "127.0.0.3".parse().unwrap();
    let o = ResolveOptions {
        timeout: Duration::from_millis(200),
        retries: 0,
        ..ResolveOptions::new(spec)
    };
    let err = resolve_all(names(&["a.example.com"]), &o)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.3:53"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_host_port_and_reports_bad_lines_and_a_summary_on_stderr() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let server = format!("localhost:{}", ts.addr.port());
    let input = "www.example.com\nbad name\nmissing.example.com\nwww.example.com\n";
    let out = dnslb_resolve(vec!["-s".into(), server.clone()], Some(input)).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "www.example.com 192.0.2.1 A\n\
         bad name - Error:HOST NOT FOUND\n\
         missing.example.com - Error:HOST NOT FOUND\n\
         www.example.com 192.0.2.1 A\n"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "<stdin>:2: bad hostname 'bad name': bad character ' '"),
        "{}",
        out.stderr
    );
    let summary = summary_line(&out);
    assert!(
        summary.starts_with("dnslb resolve: 4 lines in ")
            && summary.contains(" qps): 2 resolved, 1 not found, 0 timed out, 0 failed, 1 bad"),
        "{summary}"
    );

    // From a file, the bad line names the file.
    let path = dir.write("names.txt", input);
    let path = path.display().to_string();
    let out = dnslb_resolve(vec!["-s".into(), server, path.clone()], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let want = format!("{path}:2: bad hostname 'bad name': bad character ' '");
    assert!(out.stderr.lines().any(|l| l == want), "{}", out.stderr);
    ts.stop().await;

    // A bad -s: a clear error, nothing resolved.
    for (bad, says) in [
        ("localhost:abc", "bad port 'abc'"),
        ("2001:db8::1:zz", "goes in brackets"),
        ("", "empty server address"),
    ] {
        let out = dnslb_resolve(vec!["-s".into(), bad.into()], Some("a.example\n")).await;
        assert!(!out.status.success(), "-s {bad:?} accepted");
        assert!(out.stderr.contains(says), "-s {bad:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_run_with_one_line() {
    // Was: every name timed out, each written as not found, exit 0.
    let (addr, reader) = silent_server().await;
    let args = one_try_args(addr, 100);
    let out = dnslb_resolve(args, Some("a.example.com\nb.example.com\n")).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{}", out.stderr);
    assert!(
        lines[0].contains(&format!(
            "no answer from {addr}: 2 names asked, not one answered in 1 try of 100 ms"
        )),
        "{}",
        lines[0]
    );
    assert!(out.stdout.is_empty(), "nothing written: {:?}", out.stdout);

    // The library call says the same.
    let dir = ZoneDir::new();
    let input = dir.write("in.txt", "a.example.com\n");
    let o = ResolveOptions {
        timeout: Duration::from_millis(100),
        retries: 0,
        ..ResolveOptions::new(addr)
    };
    let err = resolve::run(Some(&input), Some(&dir.path().join("o.txt")), o)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResolveError::NoAnswer { server, names: 1, tries: 1, .. } if server == addr),
        "{err:?}"
    );
    reader.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_timeouts_among_answers_are_a_success() {
    // A TS that drops every query for one name: `on_miss = silent`.
    let dir = ZoneDir::new();
    let mut s = ts_settings(vec![dir.write("t.txt", TABLE)]);
    s.on_miss = dnslb::config::OnMiss::Silent;
    let ts = start_ts(s).await;
    let args = one_try_args(ts.addr, 150);
    let out = dnslb_resolve(args, Some("gone.example.com\nwww.example.com\n")).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "gone.example.com - Error:HOST NOT FOUND\nwww.example.com 192.0.2.1 A\n"
    );
    assert!(
        out.stderr
            .contains("dnslb resolve: gone.example.com: timed out after 1 try"),
        "{}",
        out.stderr
    );
    assert!(
        summary_line(&out).ends_with(": 1 resolved, 0 not found, 1 timed out, 0 failed, 0 bad"),
        "{}",
        out.stderr
    );
    ts.stop().await;
}
