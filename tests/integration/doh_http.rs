//! DNS over HTTPS as HTTP (RFC 9110) sees it, with curl over HTTP/2 and HTTP/1.1
//! against a plain `[ls.https]` listener: a method the path does not serve gets
//! 405 naming those it does (`Allow`), HEAD is answered as GET without the body,
//! and a GET as large as the HTTP library's URL limit allows is answered.
use std::net::SocketAddr;

use hickory_proto::op::{Edns, MessageType};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::kit::tls::{TABLE, answers_ten, content_length, curl, get_param};
use crate::kit::{free_ports, need, or_skip, query, start_ls_role, table_ts};

/// The value of the header `name` in `headers` (all lowercase, as [`curl`] keeps them).
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

/// The query `www.example.com A` (id 0) carrying an EDNS option of `pad` bytes,
/// in base64url: a GET's `dns` parameter of about 4/3 of that.
fn big_param(pad: usize) -> String {
    let mut q = query("www.example.com", RecordType::A, None);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Unknown(EdnsCode::Padding.into(), vec![0; pad]));
    q.set_edns(edns);
    let mut q = q.to_vec().unwrap();
    q[..2].copy_from_slice(&[0, 0]);
    data_encoding::BASE64URL_NOPAD.encode(&q)
}

/// PUT, OPTIONS and DELETE on the DoH path get 405 with `Allow: GET, HEAD,
/// POST` (RFC 9110 §15.5.6); HEAD gets GET's status and headers (its
/// `content-length` too) and no body (§9.3.2); over HTTP/2 and HTTP/1.1. A GET
/// whose query is 13 KB (a 17 KB URL) and one of 40 KB (54 KB) are answered
/// over both (before: 431 over HTTP/2 past 16 KiB of headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_answers_head_names_its_methods_in_405_and_takes_large_gets() {
    const TEST: &str = "doh_answers_head_names_its_methods_in_405_and_takes_large_gets";
    let [curl_bin] = or_skip!(need(TEST, ["curl"]));
    let (dir, ts) = table_ts(TABLE).await;
    let p = free_ports(2);
    let https = SocketAddr::from(([127, 0, 0, 1], p[1]));
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{}\"]\n\n[ls.https]\nlisten = [\"{https}\"]\n\n\
         [[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\n",
        p[0], ts.addr
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let run = start_ls_role(&config).await;
    let url = format!("http://{https}/dns-query?dns={}", get_param());
    for version in ["--http2-prior-knowledge", "--http1.1"] {
        for method in ["PUT", "OPTIONS", "DELETE"] {
            let got = curl(&curl_bin, dir.path(), &[version, "-X", method, &url]);
            assert_eq!(got.code, "405", "{version} {method}");
            assert_eq!(
                header(&got.headers, "allow"),
                Some("get, head, post"),
                "{version} {method}: {}",
                got.headers
            );
        }
        let get = curl(&curl_bin, dir.path(), &[version, &url]);
        assert_eq!(get.code, "200", "{version} GET");
        assert!(answers_ten(&get.body));
        let head = curl(&curl_bin, dir.path(), &[version, "-I", &url]);
        assert_eq!(head.code, "200", "{version} HEAD: {}", head.headers);
        // `-I` saves the headers where the body goes: no DNS message among them.
        assert!(!head.body.contains(&0), "{version} HEAD: a body");
        assert_eq!(
            content_length(&head.headers),
            Some(get.body.len()),
            "{version} HEAD: {}",
            head.headers
        );
        assert_eq!(
            header(&head.headers, "content-type"),
            Some("application/dns-message")
        );
        for pad in [13_000, 40_000] {
            let big = format!("http://{https}/dns-query?dns={}", big_param(pad));
            let got = curl(&curl_bin, dir.path(), &[version, &big]);
            assert_eq!(got.code, "200", "{version} GET of a {pad}-byte option");
            // The answer to that question (whatever the backend made of a
            // query this large: the HTTP side is what is tested here).
            let m = hickory_proto::op::Message::from_vec(&got.body).unwrap();
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(m.queries[0].name().to_ascii(), "www.example.com.");
        }
    }
    run.controls.send(dnslb::roles::Control::Shutdown).unwrap();
    run.task.await.unwrap().unwrap();
    ts.stop().await;
}
