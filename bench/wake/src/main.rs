//! bench/wake: the same UDP cache-hit work (a `recvmmsg` batch, each query
//! answered from a tiny fixed table, a `sendmmsg`) served by three worker
//! loops, to choose the LS's by measurement (issue 40, item 2):
//!
//!   wake tokio|tokio-read|epoll|uring ADDR
//!
//! One thread, one socket on ADDR, until killed. `uring` falls back to
//! `epoll` (and says so once on stderr) where io_uring cannot be set up.
mod dns;
mod epoll_loop;
mod tokio_loop;
mod uring_loop;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: wake tokio|tokio-read|epoll|uring ADDR");
        std::process::exit(2);
    };
    let table = dns::Table::bench();
    let sock = dns::bind(&addr)?;
    match mode.as_str() {
        "tokio" => tokio_loop::run(sock, &table),
        "tokio-read" => tokio_loop::run_readable(sock, &table),
        "epoll" => epoll_loop::run(sock, &table),
        "uring" => match uring_loop::setup() {
            Ok(ring) => uring_loop::run(ring, sock, &table),
            Err(err) => {
                eprintln!("wake: io_uring unavailable ({err}): serving on epoll");
                epoll_loop::run(sock, &table)
            }
        },
        _ => {
            eprintln!("wake: unknown loop {mode}");
            std::process::exit(2);
        }
    }
}
