//! A worker's relay on loopback: the build's distcc connects here, and the
//! relay copies bytes to the worker's job port (its own address, or its
//! ssh tunnel's local end). What it adds is the power to end a dead
//! worker's compiles at once: `cut` closes both ends of every connection,
//! so that distcc sees the failure now and compiles the file here, instead
//! of waiting out DISTCC_IO_TIMEOUT (300 s) or ssh's keep-alive.
//!
//! Each worker has its own address, `127.200.X.Y` on the worker's job
//! port, picked by a hash of the entry and the user: the same run after
//! run, so that two builds of one user name the worker alike and share
//! distcc's slot locks (both bind it, SO_REUSEPORT; the kernel spreads the
//! connections), and `distccmon` tells the workers apart.
//!
//! One thread accepts for every relay (a thousand workers need no
//! thousand accepting threads); each connection is carried by a thread of
//! its own.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

/// distcc's own connect timeout: a relay that cannot reach the worker
/// sooner gives up as distcc would have.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// A copying thread needs a buffer and little else.
const STACK: usize = 64 * 1024;

/// One worker's relay: its listening address, where it sends connections
/// now, and the connections open through it.
pub struct Relay {
    pub listen: SocketAddrV4,
    shared: Arc<Shared>,
}

struct Shared {
    /// Where a new connection goes; `None`: refused (the worker is out).
    target: Mutex<Option<SocketAddr>>,
    /// Both ends of every open connection, by number, for `cut`: the
    /// carrier's own descriptors (no copies, which cost two system calls
    /// each per compile), listed only while it holds them open.
    open: Mutex<Vec<(u64, RawFd, RawFd)>>,
    next: AtomicU64,
}

/// The relay address for `entry` (the `attempt`th choice): 127.200.X.Y,
/// never .0 or .255 in the last place.
pub fn address(entry: &str, euid: u32, port: u16, attempt: u32) -> SocketAddrV4 {
    let h = crate::ssh::args::fnv1a(&format!("{entry}\0{euid}\0{attempt}"));
    let x = (h >> 8) as u8;
    let y = 1 + (h % 254) as u8;
    SocketAddrV4::new(Ipv4Addr::new(127, 200, x, y), port)
}

impl Relay {
    /// Start the relay for `entry`, sending to `target`: the first of a
    /// few addresses that is free for us and whose IP is not in `taken`
    /// (distcc's state files name a host by IP alone, so the build's
    /// account tells workers apart by their relay's IP).
    pub fn start(
        entry: &str,
        port: u16,
        target: Option<SocketAddr>,
        taken: &[SocketAddrV4],
    ) -> Result<Relay, String> {
        let euid = crate::sys::euid();
        let mut last = String::new();
        for attempt in 0..8 {
            let addr = address(entry, euid, port, attempt);
            if taken.iter().any(|t| t.ip() == addr.ip()) {
                continue;
            }
            // SO_REUSEPORT admits only sockets of the same user.
            match crate::sys::listen_tcp(addr, 128, true) {
                Ok(l) => return Relay::serve(l, addr, target),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(format!("no relay address for '{entry}' ({last})"))
    }

    fn serve(
        listener: TcpListener,
        listen: SocketAddrV4,
        target: Option<SocketAddr>,
    ) -> Result<Relay, String> {
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            open: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        });
        let _ = listener.set_nonblocking(true);
        // Woken when the client has sent its request, not at its connect:
        // one wake-up fewer per compile (distcc speaks first).
        let secs: libc::c_int = 5;
        // SAFETY: setsockopt reads the int we pass, on our own socket.
        unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&raw const secs).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        listening()?.add(listener, Arc::clone(&shared));
        Ok(Relay { listen, shared })
    }

    /// Send new connections to `target` (`None`: refuse them).
    pub fn point(&self, target: Option<SocketAddr>) {
        *lock(&self.shared.target) = target;
    }

    /// Close every open connection, both ends: distcc retries the file.
    /// Returns how many there were.
    pub fn cut(&self) -> usize {
        // Under the lock: a carrier takes its entry out (under the same
        // lock) before it closes the descriptors.
        let mut open = lock(&self.shared.open);
        for &(_, a, b) in open.iter() {
            crate::sys::shutdown_both(a);
            crate::sys::shutdown_both(b);
        }
        let n = open.len();
        open.clear();
        n
    }

    /// Connections open through it now: this build's compiles there.
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.open).len()
    }
}

/// Every relay's listening socket, and a pipe that tells the accepting
/// thread of a new one.
struct Listening {
    all: Mutex<Vec<(TcpListener, Arc<Shared>)>>,
    wake: (std::fs::File, std::fs::File),
}

/// The one accepting thread's list, made (and the thread started) with
/// the first relay.
fn listening() -> Result<&'static Listening, String> {
    static LISTENING: OnceLock<Result<Listening, String>> = OnceLock::new();
    let made = LISTENING.get_or_init(|| {
        let wake = crate::sys::pipe().map_err(|e| format!("a pipe for the relays: {e}"))?;
        thread::Builder::new()
            .name("relays".into())
            .stack_size(STACK)
            .spawn(|| {
                if let Ok(l) = listening() {
                    l.accept();
                }
            })
            .map_err(|e| format!("the relays' thread: {e}"))?;
        Ok(Listening {
            all: Mutex::new(Vec::new()),
            wake,
        })
    });
    made.as_ref().map_err(Clone::clone)
}

impl Listening {
    fn add(&self, listener: TcpListener, shared: Arc<Shared>) {
        lock(&self.all).push((listener, shared));
        let _ = (&self.wake.1).write(&[0]);
    }

    /// Accept on every relay, for the life of the process.
    fn accept(&self) {
        let mut drain = [0u8; 64];
        loop {
            let mut fds = vec![self.wake.0.as_raw_fd()];
            fds.extend(lock(&self.all).iter().map(|(l, _)| l.as_raw_fd()));
            let ready = crate::sys::readable_of(&fds, -1);
            if ready[0] {
                let _ = (&self.wake.0).read(&mut drain);
            }
            let all = lock(&self.all);
            for ((l, shared), _) in all.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
                while let Ok((client, _)) = l.accept() {
                    let s = Arc::clone(shared);
                    let _ = crate::sys::spawn_detached(STACK, Box::new(move || s.carry(client)));
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// One connection: reach the worker, then copy both ways until both
    /// sides are done (or `cut`).
    fn carry(&self, client: TcpStream) {
        let Some(target) = *lock(&self.target) else {
            return; // dropped: distcc sees the close and compiles here
        };
        // No send timeout once connected: a worker may take its time.
        let Ok(worker) = crate::sys::connect_tcp(target, CONNECT_TIMEOUT)
            .and_then(|w| w.set_write_timeout(None).map(|()| w))
        else {
            return;
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).push((n, client.as_raw_fd(), worker.as_raw_fd()));
        carry_both(&client, &worker);
        lock(&self.open).retain(|(i, _, _)| *i != n);
        // Only now are the descriptors closed (client and worker dropped).
    }
}

/// Copy both ways in this one thread until both ends are done (each end
/// passed on as it comes), or either side fails (`cut` makes both fail).
/// distcc's protocol takes turns (the request, then the answer), so a
/// blocking write here never waits on a read we put off.
fn carry_both(client: &TcpStream, worker: &TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    let mut fds = [client.as_raw_fd(), worker.as_raw_fd()];
    while fds.iter().any(|&fd| fd >= 0) {
        let ready = crate::sys::readable(fds, -1);
        for side in 0..2 {
            if !ready[side] || fds[side] < 0 {
                continue;
            }
            let (mut from, mut to) = if side == 0 {
                (client, worker)
            } else {
                (worker, client)
            };
            match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    fds[side] = -1;
                }
                Ok(n) if to.write_all(&buf[..n]).is_ok() => {}
                _ => {
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = worker.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}
