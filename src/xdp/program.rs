//! dnslb's XDP program on one interface: loaded from the object the binary
//! carries (`bpf/dnslb_xdp.o`, built from `bpf/dnslb_xdp.c` by `bpf/build`),
//! attached through a BPF link so that the kernel detaches it when the
//! process ends however it ends (a crash or `kill -9` leaves nothing
//! behind), and its maps filled: the addresses served, the AF_XDP socket of
//! each queue, the blocked client prefixes; its counters read back.
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};
use ipnet::IpNet;

use super::filter::{Filter, TrieChanges};

/// The XDP program, as `bpf/build` compiles it.
pub const OBJECT: &[u8] = include_bytes!("../../bpf/dnslb_xdp.o");

/// Why the program could not be put on an interface.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The object did not load into the kernel (no privilege: CAP_BPF and
    /// CAP_NET_ADMIN, or a kernel without BPF).
    #[error("the XDP program did not load: {0}")]
    Load(String),
    /// The interface refused it (no such interface, another XDP program on it).
    #[error("the XDP program could not attach to {iface}: {err}")]
    Attach {
        /// The interface.
        iface: String,
        /// What the kernel said.
        err: String,
    },
    /// A map update failed.
    #[error("the XDP program's map {map}: {err}")]
    Map {
        /// The map.
        map: &'static str,
        /// What the kernel said.
        err: String,
    },
}

/// The program's counters, summed over the CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to an AF_XDP socket.
    pub to_user: u64,
    /// Datagrams dropped as a blocked client's.
    pub blocked: u64,
    /// Datagrams to a served address that came on a queue with no socket,
    /// passed to the kernel.
    pub no_socket: u64,
    /// Datagrams dropped as from a client outside the allowed networks.
    pub not_allowed: u64,
}

/// The program on one interface; dropping it detaches it.
pub struct Program {
    iface: String,
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    /// The filter in force (as far as is known).
    filter: Filter,
    /// Whether `filter` was written whole to the maps.
    filter_set: bool,
    /// The addresses served (each in the `served4` or `served6` map).
    served: Vec<SocketAddr>,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProgramError {
    move |e| ProgramError::Map {
        map,
        err: e.to_string(),
    }
}

/// The key of `addr` in the program's `served4` map (none for IPv6): the
/// address, the port in network order, two zero bytes. dnslb writes only
/// the interface's own addresses: an unspecified listen address is served
/// as each of them (`iface::served_on`); the program looks for no wildcard.
fn served4_key(addr: SocketAddr) -> Option<[u8; 8]> {
    let SocketAddr::V4(a) = addr else {
        return None;
    };
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&a.ip().octets());
    key[4..6].copy_from_slice(&a.port().to_be_bytes());
    Some(key)
}

/// The key of `addr` in the `served6` map (none for IPv4): the address, the
/// port in network order, two zero bytes.
fn served6_key(addr: SocketAddr) -> Option<[u8; 20]> {
    let SocketAddr::V6(a) = addr else {
        return None;
    };
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&a.ip().octets());
    key[16..18].copy_from_slice(&a.port().to_be_bytes());
    Some(key)
}

impl Program {
    /// Loads the program and attaches it to `iface` (native mode where the
    /// driver has it, generic otherwise, as the kernel picks).
    ///
    /// # Errors
    /// [`ProgramError::Load`] or [`ProgramError::Attach`].
    pub fn attach(iface: &str) -> Result<Program, ProgramError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| ProgramError::Load(e.to_string()))?;
        let attach_err = |err: String| ProgramError::Attach {
            iface: iface.to_owned(),
            err,
        };
        let prog: &mut Xdp = ebpf
            .program_mut("dnslb_xdp")
            .ok_or_else(|| ProgramError::Load("no program dnslb_xdp in the object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| ProgramError::Load(e.to_string()))?;
        prog.load().map_err(|e| ProgramError::Load(verbose(&e)))?;
        let link = prog.attach(iface, XdpMode::Default).map_err(|e| {
            let why = verbose(&e);
            // EBUSY: the interface has an XDP program already.
            match why.contains("os error 16") {
                true => attach_err(format!(
                    "{why} (another XDP program is attached to it: `ip link show {iface}` names it)"
                )),
                false => attach_err(why),
            }
        })?;
        Ok(Program {
            iface: iface.to_owned(),
            ebpf,
            link: Some(link),
            filter: Filter::default(),
            filter_set: false,
            served: Vec::new(),
        })
    }

    /// The interface it is on.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// UDP to exactly `addrs` goes to the queues' sockets (what was served
    /// before and is not in `addrs` no more).
    ///
    /// # Errors
    /// [`ProgramError::Map`].
    pub fn serve(&mut self, addrs: &[SocketAddr]) -> Result<(), ProgramError> {
        if addrs == self.served.as_slice() {
            return Ok(());
        }
        let gone: Vec<SocketAddr> = (self.served.iter())
            .filter(|a| !addrs.contains(a))
            .copied()
            .collect();
        served(&mut self.ebpf, "served4", &gone, addrs, served4_key)?;
        served(&mut self.ebpf, "served6", &gone, addrs, served6_key)?;
        self.served = addrs.to_vec();
        Ok(())
    }

    /// Frames for `queue` go to the socket `fd`.
    ///
    /// # Errors
    /// [`ProgramError::Map`].
    pub fn add_socket(&mut self, queue: u32, fd: impl AsRawFd) -> Result<(), ProgramError> {
        let map = self.ebpf.map_mut("xsks").ok_or(ProgramError::Map {
            map: "xsks",
            err: "missing".into(),
        })?;
        let mut xsks = XskMap::try_from(map).map_err(map_err("xsks"))?;
        xsks.set(queue, fd, 0).map_err(map_err("xsks"))
    }

    /// Makes the program drop what `next` drops, changing only what
    /// differs from the filter in force.
    ///
    /// # Errors
    /// [`ProgramError::Map`] (the next call applies the same changes again:
    /// inserting a network held already and removing one gone are harmless).
    pub fn set_filter(&mut self, next: &Filter) -> Result<(), ProgramError> {
        if *next == self.filter && self.filter_set {
            return Ok(());
        }
        let changes = self.filter.changes(next);
        // Known again only once every change is in.
        self.filter_set = false;
        trie(&mut self.ebpf, "allowed4", "allowed6", &changes.allow, 1u8)?;
        // A blocked network's value counts its drops, from 0 when it is added.
        trie(
            &mut self.ebpf,
            "blocked4",
            "blocked6",
            &changes.blocked,
            0u64,
        )?;
        let map = self.ebpf.map_mut("settings").ok_or(ProgramError::Map {
            map: "settings",
            err: "missing".into(),
        })?;
        let mut settings: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(map_err("settings"))?;
        let blocks = u32::try_from(next.blocked.len()).unwrap_or(u32::MAX);
        settings.set(0, blocks, 0).map_err(map_err("settings"))?;
        settings
            .set(1, u32::from(next.allow.is_some()), 0)
            .map_err(map_err("settings"))?;
        self.filter = next.clone();
        self.filter_set = true;
        Ok(())
    }

    /// The counters, summed over the CPUs (zero where they cannot be read).
    pub fn counters(&self) -> Counters {
        let Some(map) = self.ebpf.map("counters") else {
            return Counters::default();
        };
        let Ok(counters) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return Counters::default();
        };
        let sum = |i: u32| {
            counters
                .get(&i, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0)
        };
        Counters {
            to_user: sum(0),
            blocked: sum(1),
            no_socket: sum(2),
            not_allowed: sum(3),
        }
    }

    /// The datagrams dropped so far for each blocked network (those of the
    /// filter in force; counted from when it was added).
    pub fn blocked_drops(&self) -> Vec<(IpNet, u64)> {
        let blocked = if self.filter_set {
            &self.filter.blocked
        } else {
            return Vec::new();
        };
        blocked
            .iter()
            .filter_map(|n| {
                let net = n.trunc();
                let count = match net {
                    IpNet::V4(_) => dropped_of(&self.ebpf, "blocked4", key4(&net)),
                    IpNet::V6(_) => dropped_of(&self.ebpf, "blocked6", key6(&net)),
                }?;
                Some((net, count))
            })
            .collect()
    }

    /// Detaches the program now (dropping it does too).
    pub fn detach(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        if let Some(prog) = self.ebpf.program_mut("dnslb_xdp")
            && let Ok(xdp) = <&mut Xdp>::try_from(prog)
        {
            let _ = xdp.detach(link);
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Takes the keys of `gone` out of the served map `map` and puts those of
/// `addrs` in (`key` says which addresses the map holds).
fn served<const N: usize>(
    ebpf: &mut Ebpf,
    map: &'static str,
    gone: &[SocketAddr],
    addrs: &[SocketAddr],
    key: impl Fn(SocketAddr) -> Option<[u8; N]>,
) -> Result<(), ProgramError> {
    let m = ebpf.map_mut(map).ok_or_else(|| ProgramError::Map {
        map,
        err: "missing".into(),
    })?;
    let mut served: HashMap<&mut MapData, [u8; N], u8> =
        HashMap::try_from(m).map_err(map_err(map))?;
    for k in gone.iter().filter_map(|a| key(*a)) {
        let _ = served.remove(&k);
    }
    for k in addrs.iter().filter_map(|a| key(*a)) {
        served.insert(k, 1, 0).map_err(map_err(map))?;
    }
    Ok(())
}

/// The trie key of an IPv4 network.
fn key4(n: &IpNet) -> Option<Key<[u8; 4]>> {
    match n {
        IpNet::V4(n) => Some(Key::new(u32::from(n.prefix_len()), n.network().octets())),
        IpNet::V6(_) => None,
    }
}

/// The trie key of an IPv6 network.
fn key6(n: &IpNet) -> Option<Key<[u8; 16]>> {
    match n {
        IpNet::V6(n) => Some(Key::new(u32::from(n.prefix_len()), n.network().octets())),
        IpNet::V4(_) => None,
    }
}

/// Applies `changes` to the IPv4 trie `v4` and the IPv6 trie `v6`, each
/// network added with the value `value`.
fn trie<V: aya::Pod>(
    ebpf: &mut Ebpf,
    v4: &'static str,
    v6: &'static str,
    changes: &TrieChanges,
    value: V,
) -> Result<(), ProgramError> {
    apply(ebpf, v4, changes, value, key4)?;
    apply(ebpf, v6, changes, value, key6)
}

/// Applies the networks of `changes` that `key` takes to the trie `map`.
fn apply<const N: usize, V: aya::Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    changes: &TrieChanges,
    value: V,
    key: impl Fn(&IpNet) -> Option<Key<[u8; N]>>,
) -> Result<(), ProgramError> {
    let m = ebpf.map_mut(map).ok_or_else(|| ProgramError::Map {
        map,
        err: "missing".into(),
    })?;
    let mut t: LpmTrie<&mut MapData, [u8; N], V> = LpmTrie::try_from(m).map_err(map_err(map))?;
    for k in changes.remove.iter().filter_map(&key) {
        let _ = t.remove(&k);
    }
    // Only if it is not there: a network held already (an insert retried
    // after a failed update) keeps its value, its drops counted so far.
    for k in changes.add.iter().filter_map(&key) {
        match t.insert(&k, value, BPF_NOEXIST) {
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc_eexist()) => {}
            other => other.map_err(map_err(map))?,
        }
    }
    Ok(())
}

/// `BPF_NOEXIST`: an update that adds only.
const BPF_NOEXIST: u64 = 1;

/// `EEXIST`.
fn libc_eexist() -> i32 {
    rustix::io::Errno::EXIST.raw_os_error()
}

/// The value of `net` in the trie `map` (its drops), if it is there.
fn dropped_of<const N: usize>(
    ebpf: &Ebpf,
    map: &'static str,
    key: Option<Key<[u8; N]>>,
) -> Option<u64> {
    let t: LpmTrie<&MapData, [u8; N], u64> = LpmTrie::try_from(ebpf.map(map)?).ok()?;
    t.get(&key?, 0).ok()
}

/// An error with its causes, as one line.
fn verbose(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_keys_are_laid_out_as_the_programs_structs() {
        // struct served4 { addr[4]; port (network order); pad }.
        let v4: SocketAddr = "198.18.0.1:853".parse().unwrap();
        assert_eq!(served4_key(v4), Some([198, 18, 0, 1, 0x03, 0x55, 0, 0]));
        assert_eq!(served6_key(v4), None);
        // struct served6 { addr[16]; port (network order); pad }.
        let v6: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let mut want = [0u8; 20];
        want[..2].copy_from_slice(&[0x20, 0x01]);
        want[2..4].copy_from_slice(&[0x0d, 0xb8]);
        want[15] = 1;
        want[17] = 53;
        assert_eq!(served6_key(v6), Some(want));
        assert_eq!(served4_key(v6), None);
    }
}
