//! Reading a config stays linear in its entries (100,000 zones in one TS;
//! thousands of services): each test below reads 100,000
//! entries, seconds in a debug build, where a scan per entry (of the keys
//! for a `file:line`, of the text for a line number, of the earlier entries
//! for a duplicate) took minutes to hours.

use super::*;

const N: usize = 100_000;

/// A TS of `N` services, the last named as the first: the duplicate is found
/// and reported at the last service's line, and every service knows its own.
#[test]
fn a_ts_of_100_000_services_is_read_in_linear_time() {
    let mut text =
        String::from("[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.zone\"]\n");
    for i in 0..N {
        let name = if i + 1 == N { 0 } else { i };
        text.push_str(&format!(
            "\n[[ts.service]]\nname = \"s{name}.t.test\"\nendpoint = [{{ addr = \"192.0.2.1\" }}]\n"
        ));
    }
    // Each service takes 4 lines from line 5 on; its name is its third.
    let line_of = |i: usize| 7 + 4 * i;
    let config = Config::parse(&text, Path::new(FILE)).unwrap();
    let services = &config.ts[0].service;
    assert_eq!(services.len(), N);
    assert_eq!(services[0].at, format!("{FILE}:{}", line_of(0)));
    assert_eq!(services[N / 2].at, format!("{FILE}:{}", line_of(N / 2)));
    let problems = Config::diagnose(&text, Path::new(FILE)).unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with(&format!("{FILE}:{}:", line_of(N - 1)))
            && shown[0].contains("earlier [[ts.service]]"),
        "{shown:?}"
    );
}

/// A TS whose `zones` lists `N` files: read and checked, the paths resolved
/// in order; a bad value at the end of the list is reported at the key.
#[test]
fn a_ts_of_100_000_zone_files_is_read_in_linear_time() {
    let zones: Vec<String> = (0..N)
        .map(|i| format!("\"zones/z{i}.test.zone\""))
        .collect();
    let text = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\n{}\n]\n",
        zones.join(",\n")
    );
    let config = Config::from_toml(&text, Path::new("/etc/dnslb/config.toml")).unwrap();
    let files = &config.ts[0].zones.files;
    assert_eq!(files.len(), N);
    assert_eq!(
        files[N - 1],
        Path::new(&format!("/etc/dnslb/zones/z{}.test.zone", N - 1))
    );
    let bad = text.replacen(&format!("\"zones/z{}.test.zone\"", N - 1), "7", 1);
    let err = Config::from_toml(&bad, Path::new(FILE))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("{FILE}:4: ts.zones")), "{err}");
}
