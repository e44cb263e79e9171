//! An AF_XDP socket on one queue of one interface, and its memory: the one
//! module of the crate with `unsafe` (the library denies it everywhere
//! else).
//!
//! [`Xsk::open`] maps a region of [`FRAMES`] frames of [`FRAME_SIZE`] bytes
//! (the UMEM), registers it with a new AF_XDP socket bound to the queue, and
//! maps the socket's four rings (through `xdpilone`): the kernel takes empty
//! frames from the fill ring and hands received ones back on the receive
//! ring; frames put on the transmit ring come back on the completion ring
//! once sent. Every frame is always in exactly one place: a ring, the
//! socket's free list, or the hands of [`Xsk::serve`]'s callback for the
//! length of one call. That is what makes the slices handed out sound.
#![allow(unsafe_code)]

use std::io;
use std::num::NonZeroU32;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::time::Duration;

use super::counters::Lost;
use xdpilone::xdp::XdpDesc;
use xdpilone::{
    BufIdx, DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
};

/// Bytes per frame: a page, room for a 1500-byte MTU frame and its answer
/// at any offset the kernel picks.
pub const FRAME_SIZE: u32 = 4096;
/// Frames per socket (16 MiB): half can wait in the fill ring while the
/// other half are received, answered and in the transmit ring.
pub const FRAMES: u32 = 4096;
/// Entries of each ring.
const RING: u32 = 2048;
/// Most `sendto` calls per batch to push the transmit ring out.
const KICKS: u32 = 8;

/// Why a socket could not be opened (the errno of the call that failed).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {err}")]
pub struct RingError {
    what: &'static str,
    err: io::Error,
}

impl RingError {
    fn of(what: &'static str, errno: &xdpilone::Errno) -> Self {
        RingError {
            what,
            err: io::Error::from_raw_os_error(errno.get_raw()),
        }
    }

    /// The OS error underneath.
    pub fn os_error(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// An anonymous, page-aligned mapping, unmapped on drop.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> io::Result<Area> {
        // SAFETY: an anonymous private mapping at an address the kernel
        // picks aliases nothing; the pointer is checked non-null and owned
        // by `Area` alone, which unmaps it once, on drop.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }?;
        // Huge pages where the kernel has them to give (transparent huge
        // pages, asked before the first touch): each frame is on a page of
        // its own, and with 4 KiB pages the first read of every frame
        // missed the TLB too. Then every page made present now, as
        // MAP_POPULATE did (a kernel without MADV_POPULATE_WRITE faults
        // them in at their first use instead).
        // SAFETY: the range is the mapping just made, which nothing else
        // uses yet; advice changes how it is backed, not its contents.
        unsafe {
            let _ = rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage);
            let _ = rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxPopulateWrite);
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Area { ptr, len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Area::new`, unmapped only here; the
        // socket that registered it was dropped before (field order of `Xsk`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// SAFETY: `Area` is an owned pointer to memory no other value refers to
// (the kernel aside, through the rings `Xsk` owns with it).
unsafe impl Send for Area {}

/// One AF_XDP socket with its own UMEM, owned by one worker thread.
pub struct Xsk {
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    umem: Umem,
    /// Frames (their offsets in the UMEM) in no ring: ready for the fill ring.
    free: Vec<u64>,
    /// The answers of one batch, waiting for the transmit ring.
    out: Vec<XdpDesc>,
    /// The descriptors of the batch being served (kept for reuse).
    batch: Vec<XdpDesc>,
    fd: i32,
    /// Last: unmapped after the socket and rings are gone.
    _area: Area,
}

// SAFETY: the rings and UMEM hold pointers into mappings owned by this value
// alone; `Xsk` is moved to its worker thread once and used only there.
unsafe impl Send for Xsk {}

impl Xsk {
    /// An AF_XDP socket bound to `queue` of interface `ifname`, copy or
    /// zero-copy as the driver offers, its fill ring filled.
    ///
    /// # Errors
    /// The step that failed and its OS error (no such interface, no queue of
    /// that number, no privilege, a kernel without AF_XDP).
    pub fn open(ifname: &str, queue: u32) -> Result<Xsk, RingError> {
        let name = std::ffi::CString::new(ifname).map_err(|_| RingError {
            what: "interface name",
            err: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        let mut info = IfInfo::invalid();
        info.from_name(&name)
            .map_err(|e| RingError::of("interface", &e))?;
        info.set_queue(queue);
        let len = (FRAMES * FRAME_SIZE) as usize;
        let area = Area::new(len).map_err(|err| RingError { what: "mmap", err })?;
        let config = UmemConfig {
            fill_size: RING,
            complete_size: RING,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let region = NonNull::slice_from_raw_parts(area.ptr, len);
        // SAFETY: `region` is the page-aligned mapping of `area`, `len` bytes,
        // which `Xsk` keeps alive until after the socket (field order).
        let umem = unsafe { Umem::new(config, region) }.map_err(|e| RingError::of("umem", &e))?;
        let sock = Socket::with_shared(&info, &umem).map_err(|e| RingError::of("socket", &e))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(|e| RingError::of("fill ring", &e))?;
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(RING),
                    tx_size: NonZeroU32::new(RING),
                    bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
                },
            )
            .map_err(|e| RingError::of("rings", &e))?;
        let rx = user
            .map_rx()
            .map_err(|e| RingError::of("receive ring", &e))?;
        let tx = user
            .map_tx()
            .map_err(|e| RingError::of("transmit ring", &e))?;
        umem.bind(&user).map_err(|e| RingError::of("bind", &e))?;
        let fd = rx.as_raw_fd();
        let free = (0..FRAMES).map(|i| u64::from(i * FRAME_SIZE)).collect();
        let mut xsk = Xsk {
            rx,
            tx,
            device,
            umem,
            free,
            out: Vec::with_capacity(RING as usize),
            batch: Vec::with_capacity(RING as usize),
            fd,
            _area: area,
        };
        xsk.recycle();
        Ok(xsk)
    }

    /// What the kernel dropped of what the program handed this socket
    /// (`XDP_STATISTICS`); `None` when it cannot be read.
    pub fn lost(&self) -> Option<Lost> {
        let s = self.device.statistics_v2().ok()?;
        Some(Lost {
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
            // The kernel counts a drop for want of a free frame in both.
            rx_dropped: s.rx_dropped.saturating_sub(s.rx_fill_ring_empty_descs),
        })
    }

    /// The socket, for the XSKMAP entry of its queue.
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor of the socket `self` owns, open while
        // `self` lives, which the borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Takes sent frames back from the completion ring and gives every free
    /// frame to the fill ring (waking the kernel when it asks).
    pub fn recycle(&mut self) {
        self.kick();
        let mut done = self.device.complete(RING);
        while let Some(addr) = done.read() {
            self.free.push(addr - addr % u64::from(FRAME_SIZE));
        }
        done.release();
        drop(done);
        if !self.free.is_empty() {
            let n = self.free.len().min(RING as usize) as u32;
            let mut fill = self.device.fill(n);
            let room = fill.capacity() as usize;
            let put = fill.insert(self.free.iter().rev().take(room).copied()) as usize;
            fill.commit();
            drop(fill);
            self.free.truncate(self.free.len() - put);
        }
        if self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    /// Receives up to `max` frames and hands each to `answer` as the bytes
    /// from the frame's start to its chunk's end, with the frame's length;
    /// `answer` returns the length of the answer frame it wrote in place, or
    /// `None` to drop it. The answers are then put on the transmit ring
    /// together. Returns how many frames came.
    pub fn serve(
        &mut self,
        max: u32,
        mut answer: impl FnMut(&mut [u8], usize) -> Option<usize>,
    ) -> u32 {
        // The batch's descriptors first, so that each frame's headers can
        // be asked of memory while the one before it is answered: the
        // kernel wrote them on another core, and the first read of a
        // frame was a cache miss per query.
        let mut got = self.rx.receive(max);
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        while let Some(desc) = got.read() {
            batch.push(desc);
        }
        got.release();
        drop(got);
        if let Some(first) = batch.first() {
            self.prefetch(first.addr);
        }
        for (i, desc) in batch.iter().enumerate() {
            if let Some(next) = batch.get(i + 1) {
                self.prefetch(next.addr);
            }
            let base = desc.addr - desc.addr % u64::from(FRAME_SIZE);
            let start = (desc.addr - base) as usize;
            let chunk = u32::try_from(base / u64::from(FRAME_SIZE))
                .ok()
                .and_then(|i| self.umem.frame(BufIdx(i)));
            let reply = chunk.and_then(|chunk| {
                let len = chunk.addr.len();
                if start + desc.len as usize > len {
                    return None;
                }
                // SAFETY: the kernel handed this chunk to user space on the
                // receive ring: until it is put on the fill or transmit ring
                // below, nothing else reads or writes it, and this slice,
                // inside the chunk, lives only for the call.
                let whole: &mut [u8] = unsafe { &mut *chunk.addr.as_ptr() };
                let bytes = whole.get_mut(start..)?;
                answer(bytes, desc.len as usize)
            });
            match reply.and_then(|len| u32::try_from(len).ok()) {
                Some(len) => self.out.push(XdpDesc {
                    addr: desc.addr,
                    len,
                    options: 0,
                }),
                None => self.free.push(base),
            }
        }
        let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        self.batch = batch;
        self.flush();
        n
    }

    /// Asks for the first two cache lines of the frame at `addr` (its
    /// Ethernet, IP and UDP headers and the DNS header and question) ahead
    /// of their reading; nothing where the target has no prefetch.
    #[inline]
    fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let base = addr - addr % u64::from(FRAME_SIZE);
            let start = (addr - base) as usize;
            let chunk = u32::try_from(base / u64::from(FRAME_SIZE))
                .ok()
                .and_then(|i| self.umem.frame(BufIdx(i)));
            if let Some(chunk) = chunk
                && start + 128 <= chunk.addr.len()
            {
                let p = chunk.addr.as_ptr().cast::<u8>().wrapping_add(start);
                // SAFETY: a prefetch reads nothing and writes nothing (a
                // hint, never a fault); the address is inside the UMEM.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(p.cast());
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// Writes a new frame into a free one with `write` (given the frame's
    /// whole chunk; it returns the frame's length, or `None` to give up) for
    /// the next [`Xsk::flush`]. False when no frame is free or `write` gave up.
    pub fn send_new(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let Some(base) = self.free.pop() else {
            return false;
        };
        let chunk = u32::try_from(base / u64::from(FRAME_SIZE))
            .ok()
            .and_then(|i| self.umem.frame(BufIdx(i)));
        let len = chunk.and_then(|chunk| {
            // SAFETY: a frame of the free list is in no ring: nothing but
            // this call reads or writes it until it is put on one below.
            let whole: &mut [u8] = unsafe { &mut *chunk.addr.as_ptr() };
            write(whole)
        });
        match len.and_then(|l| u32::try_from(l).ok()) {
            Some(len) => {
                self.out.push(XdpDesc {
                    addr: base,
                    len,
                    options: 0,
                });
                true
            }
            None => {
                self.free.push(base);
                false
            }
        }
    }

    /// Puts the frames written since the last call on the transmit ring and
    /// tells the kernel; a full ring drops the rest (their frames freed).
    pub fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut send = self.tx.transmit(self.out.len() as u32);
        // Exactly as many as there is room for: an item past the room
        // would be taken and lost.
        let room = send.capacity() as usize;
        let put = send.insert(self.out.iter().take(room).copied()) as usize;
        send.commit();
        drop(send);
        for d in self.out.drain(..).skip(put) {
            self.free.push(d.addr - d.addr % u64::from(FRAME_SIZE));
        }
        self.kick();
    }

    /// Before the socket closes: the frames written are put on the
    /// transmit ring and the kernel told until it has taken them all, or
    /// `within` passes (a frame still on the ring is lost with the socket).
    pub fn finish(&mut self, within: Duration) {
        self.flush();
        let end = std::time::Instant::now() + within;
        while self.tx.pending() > 0 && std::time::Instant::now() < end {
            self.recycle();
            if self.tx.pending() > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Tells the kernel of the transmit ring's frames: in copy mode one
    /// `sendto` sends at most 32 of them, so it is asked again while some
    /// wait (a few times at most: what is left goes with the next batch).
    fn kick(&mut self) {
        for _ in 0..KICKS {
            if self.tx.pending() == 0 || !self.tx.needs_wakeup() {
                return;
            }
            self.tx.wake();
        }
    }

    /// Waits until frames arrive, `also` is readable, or `timeout` passes;
    /// true when `also` is readable.
    pub fn wait(&self, also: BorrowedFd<'_>, timeout: Duration) -> bool {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let fd = self.fd();
        let mut fds = [
            rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(&also, rustix::event::PollFlags::IN),
        ];
        let timeout = rustix::event::Timespec {
            tv_sec: i64::from(ms / 1000),
            tv_nsec: i64::from(ms % 1000) * 1_000_000,
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        fds[1].revents().contains(rustix::event::PollFlags::IN)
    }
}
