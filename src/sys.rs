//! What Linux's /proc says about processes, sockets and memory, and the
//! few process-wide settings made at start. Readers return `None` for a
//! process that is gone; nothing here signals anything.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;

/// The fields of /proc/PID/stat that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// R, S, D, Z, T, ...
    pub state: char,
    pub pgrp: i32,
    pub session: i32,
    pub threads: u32,
    /// Start time in clock ticks since boot: with the PID, it names one
    /// process for the life of the machine.
    pub start: u64,
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parse a /proc/PID/stat line. The command name in parentheses may hold
/// spaces and parentheses itself, so fields are counted after the last ')'.
fn parse_stat(line: &str) -> Option<Stat> {
    let (_, rest) = line.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); pgrp is 5, session 6, num_threads
    // 20, starttime 22.
    Some(Stat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        threads: f.get(17)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// The user that owns a process.
pub fn owner(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The live (not zombie) processes of process group `pgid`, wherever they
/// are in the process tree (orphans included): a scan of /proc.
pub fn group(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| in_group(pid, pgid))
        .collect()
}

/// Whether `pid` is a live (not zombie) member of process group `pgid`.
fn in_group(pid: u32, pgid: u32) -> bool {
    stat(pid).is_some_and(|s| s.pgrp as u32 == pgid && s.state != 'Z')
}

/// The live processes of group `pgid` that descend from its leader: the
/// cheap way to find a running tunnel's ssh (a wrapper's child included).
fn group_from_leader(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![pgid];
    let mut seen = HashSet::new();
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if in_group(pid, pgid) {
            found.push(pid);
        }
        todo.extend(children(pid));
    }
    found
}

/// The process groups, other than `pgid`, of the live descendants of its
/// leader: where a process of a tunnel went when it made a session or
/// group of its own (a daemon; the lasting master that a ProxyJump's ssh
/// starts under `ControlPersist` in the user's ssh_config). The leader is a
/// child subreaper (`signals::own_session`), so such a process, orphaned,
/// stays its descendant instead of going to init.
pub fn escaped_groups(pgid: u32) -> Vec<u32> {
    let mut groups = Vec::new();
    let mut todo = children(pgid);
    let mut seen = HashSet::new();
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(s) = stat(pid).filter(|s| s.state != 'Z') {
            let g = s.pgrp as u32;
            if g != pgid && !groups.contains(&g) {
                groups.push(g);
            }
        }
        todo.extend(children(pid));
    }
    groups
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The inodes of the sockets a process holds.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// (port, inode) of every TCP socket listening on 127.0.0.1, from a
/// /proc/net/tcp table. Addresses are printed as the bytes of the address
/// read as a native integer, so they are decoded the same way.
pub fn listening_on_loopback(table: &str) -> Vec<(u16, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            let addr = Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_ne_bytes());
            // State 0A is LISTEN.
            (addr == Ipv4Addr::LOCALHOST && *f.get(3)? == "0A").then_some(())?;
            Some((u16::from_str_radix(port, 16).ok()?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// (port, inode) of every TCP socket listening on 127.0.0.1, asked of the
/// kernel through sock_diag netlink, which walks only the listening table:
/// about 30 µs, where reading /proc/net/tcp walks the whole connection
/// hash (2 ms on a machine with much memory). /proc/net/tcp is the
/// fallback where netlink is refused.
pub fn loopback_listeners() -> Vec<(u16, u64)> {
    listeners_by_netlink().unwrap_or_else(|_| {
        std::fs::read_to_string("/proc/net/tcp")
            .map(|t| listening_on_loopback(&t))
            .unwrap_or_default()
    })
}

fn listeners_by_netlink() -> std::io::Result<Vec<(u16, u64)>> {
    use std::io::Error;
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCP_LISTEN: u32 = 10;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned by
    // `fd` below and closed when it drops.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: raw is a new descriptor that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    use std::os::fd::{AsRawFd, FromRawFd};
    // nlmsghdr, then inet_diag_req_v2: IPv4 TCP sockets in LISTEN.
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&[0; 8]); // seq, pid
    req.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.resize(72, 0); // inet_diag_sockid: any
    // SAFETY: send reads req.len() bytes from req.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Error::last_os_error());
        }
        let data = &buf[..n as usize];
        let mut off = 0;
        while off + 16 <= data.len() {
            let u32_at = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
            let len = u32_at(off) as usize;
            let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
            if kind == libc::NLMSG_DONE as u16 {
                return Ok(found);
            }
            if kind == libc::NLMSG_ERROR as u16 || len < 16 || off + len > data.len() {
                return Err(Error::other("sock_diag error"));
            }
            // inet_diag_msg: sport (big-endian) at 4, src at 8, inode at 68.
            let m = off + 16;
            if len >= 16 + 72 {
                let port = u16::from_be_bytes([data[m + 4], data[m + 5]]);
                let src = Ipv4Addr::new(data[m + 8], data[m + 9], data[m + 10], data[m + 11]);
                if src == Ipv4Addr::LOCALHOST {
                    found.push((port, u64::from(u32_at(m + 68))));
                }
            }
            off += (len + 3) & !3;
        }
    }
}

/// Whether the processes of group `pgid` listen on 127.0.0.1 at every one
/// of `ports`, among `listeners` (from `loopback_listeners`): ssh, or a
/// wrapper's ssh, has set up its forwards.
pub fn group_listens(pgid: u32, ports: &[u16], listeners: &[(u16, u64)]) -> bool {
    // Cheap first: nobody listens there yet (ssh is still logging in).
    if ports
        .iter()
        .any(|p| !listeners.iter().any(|(lp, _)| lp == p))
    {
        return false;
    }
    let held: HashSet<u64> = group_from_leader(pgid)
        .into_iter()
        .flat_map(socket_inodes)
        .collect();
    ports.iter().all(|p| {
        listeners
            .iter()
            .any(|(lp, inode)| lp == p && held.contains(inode))
    })
}

/// Wait until child `pid` has exited, without reaping it: until it is
/// reaped, its PID cannot be given to another process.
pub fn wait_exit(pid: u32) {
    loop {
        // SAFETY: waitid writes into the siginfo we pass.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The width of the terminal on `fd`, if it is one.
pub fn terminal_columns(fd: libc::c_int) -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// MemAvailable from /proc/meminfo, in MiB.
pub fn mem_available_mib() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
    .map(|k| k / 1024)
}

/// This process's peak resident memory (VmHWM), in KiB.
pub fn peak_memory_kib() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmHWM:",
    )
}

/// A `Name:   1234 kB` line's number.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn nofile() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// The soft limit on open files now in force.
pub fn file_limit() -> u64 {
    nofile().map_or(1024, |l| l.rlim_cur)
}

/// Raise the soft limit on open files to the hard limit: many workers
/// mean many sockets at once.
pub fn raise_file_limit() {
    if let Some(lim) = nofile().filter(|l| l.rlim_cur < l.rlim_max) {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    }
}

/// Keep glibc from reserving 64 MiB of address space per thread arena: one
/// thread per worker would otherwise exhaust an address-space limit
/// (`ulimit -v`, common on shared build hosts) long before memory.
pub fn few_malloc_arenas() {
    // SAFETY: mallopt only changes a malloc tunable; called before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// A TCP listener on `addr` with `backlog` (std's is 128), SO_REUSEADDR,
/// and with `share_port` SO_REUSEPORT too (a live build's relay, which
/// the same user's other builds bind as well).
pub fn listen_tcp(
    addr: std::net::SocketAddrV4,
    backlog: i32,
    share_port: bool,
) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on a descriptor owned from its creation;
    // the option and the sockaddr are local values of the right sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let opts: &[libc::c_int] = if share_port {
            &[libc::SO_REUSEADDR, libc::SO_REUSEPORT]
        } else {
            &[libc::SO_REUSEADDR]
        };
        for &opt in opts {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len) < 0
            || libc::listen(fd, backlog) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::net::TcpListener::from(owned))
    }
}

/// A TCP connection to `addr` within `timeout`, in fewer system calls
/// than std's `connect_timeout` (which makes the socket non-blocking,
/// polls, reads SO_ERROR and makes it blocking again): a blocking
/// connect bounded by SO_SNDTIMEO. The send timeout stays set; a caller
/// that writes sets its own. A timeout is `TimedOut`.
pub fn connect_tcp(
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if timeout.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    let (family, sa) = sockaddr(addr);
    // SAFETY: plain socket calls on a descriptor owned from its creation;
    // the option and the sockaddr are local values of the sizes given.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        // At least 1 µs: a zero timeout would mean none.
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: timeout
                .subsec_micros()
                .max(u32::from(timeout.as_secs() == 0)) as libc::suseconds_t,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let (ptr, len) = match &sa {
            Sockaddr::V4(a) => ((&raw const *a).cast(), std::mem::size_of_val(a)),
            Sockaddr::V6(a) => ((&raw const *a).cast(), std::mem::size_of_val(a)),
        };
        if libc::connect(fd, ptr, len as libc::socklen_t) == 0 {
            return Ok(std::net::TcpStream::from(owned));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // The send timeout passed (what Linux returns for it).
            Some(libc::EINPROGRESS | libc::EAGAIN) => Err(std::io::ErrorKind::TimedOut.into()),
            // A signal: the handshake goes on; wait for it as std would.
            Some(libc::EINTR) => {
                let deadline = std::time::Instant::now() + timeout;
                finish_connect(&owned, deadline)?;
                Ok(std::net::TcpStream::from(owned))
            }
            _ => Err(e),
        }
    }
}

enum Sockaddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

fn sockaddr(addr: std::net::SocketAddr) -> (libc::c_int, Sockaddr) {
    match addr {
        std::net::SocketAddr::V4(a) => (
            libc::AF_INET,
            Sockaddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
        ),
        std::net::SocketAddr::V6(a) => (
            libc::AF_INET6,
            Sockaddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        ),
    }
}

/// The rest of a handshake a signal interrupted: writable by `deadline`,
/// then its outcome from SO_ERROR.
fn finish_connect(fd: &std::os::fd::OwnedFd, deadline: std::time::Instant) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let mut p = [libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        poll_for(&mut p, ms);
        if p[0].revents != 0 {
            break;
        }
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into a local of that size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    match (rc, err) {
        (0, 0) => Ok(()),
        (0, e) => Err(std::io::Error::from_raw_os_error(e)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Shut down both directions of socket `fd`, which the caller knows to
/// be open (a relay's `cut`, while the carrier holds it): the peer sees
/// the end, and the carrier's blocked read or write fails.
pub fn shutdown_both(fd: std::os::fd::RawFd) {
    // SAFETY: shutdown changes the socket's state only; it neither closes
    // nor frees the descriptor, and on a bad one it merely fails.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Whether standard output is /dev/null (also what Rust makes of a closed
/// one): nothing written there reaches anyone.
pub fn stdout_is_dev_null() -> bool {
    let (Ok(out), Ok(null)) = (
        std::fs::metadata("/proc/self/fd/1"),
        std::fs::metadata("/dev/null"),
    ) else {
        return false;
    };
    use std::os::unix::fs::FileTypeExt;
    out.file_type().is_char_device() && out.rdev() == null.rdev()
}

/// Fork this process, which must have one thread: the child then goes
/// on running Rust code, which is sound only because no lock can be held
/// by a thread the child lacks. `Ok(None)` in the child, the child's PID
/// in the parent. Half the price of starting this program again.
pub fn fork_alone() -> std::io::Result<Option<u32>> {
    match stat(std::process::id()).map(|s| s.threads) {
        Some(1) => {}
        Some(_) => return Err(std::io::Error::other("this process runs threads already")),
        None => return Err(std::io::Error::other("cannot read /proc/self/stat")),
    }
    // SAFETY: one thread (checked above), so every lock the child copies
    // is free, and its memory is the parent's as it was.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as u32)),
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array we pass,
    // which we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        ))
    }
}

/// Run `f` in a new detached thread with a `stack`-byte stack, started
/// by pthread_create itself rather than std: std maps, guards and unmaps
/// an alternate signal stack for every thread, and on a virtual machine
/// each of those calls makes every CPU flush its TLB, which for a
/// thousand short probe threads costs more than their sockets. (What std
/// adds besides, a name and a stack-overflow message, these threads can
/// do without.) A panic in `f` ends only `f`, as in a std thread.
pub fn spawn_detached(stack: usize, f: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the box leaked below for this thread alone.
        let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(f));
    // SAFETY: the attributes are initialised before use and destroyed
    // after; `start` takes ownership of `arg` only if the thread starts,
    // else it is taken back here.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, stack.max(libc::PTHREAD_STACK_MIN));
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut id: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut id, &attr, start, arg.cast());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// A pidfd for process `pid`: readable once it has ended (Linux 5.3).
pub fn pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open returns a new descriptor (owned at once) or -1.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        (fd >= 0).then(|| std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int))
    }
}

/// Reap child `pid`: its raw wait status.
pub fn reap(pid: u32) -> std::io::Result<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        if unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) } >= 0 {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Put `file` in place of descriptor `fd` (0, 1 or 2).
pub fn put_at(file: &impl std::os::fd::AsRawFd, fd: libc::c_int) {
    // SAFETY: dup2 onto one of our own standard descriptors.
    unsafe {
        libc::dup2(file.as_raw_fd(), fd);
    }
}

/// This program again, with `subcommand` (one of its internal helpers):
/// /proc/self/exe runs the very binary that is running, even if an upgrade
/// has replaced the file meanwhile.
pub fn ourselves(subcommand: &str) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0("distcc-auto").arg(subcommand);
    cmd
}

/// Whether descriptor `fd` is a socket.
pub fn is_socket(fd: libc::c_int) -> bool {
    // SAFETY: fstat fills a local struct; a bad descriptor is an error.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

/// The effective user ID.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The user ID of the process at the other end of a Unix socket, as the
/// kernel recorded it when that end was made (not what it says).
pub fn peer_uid(s: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt fills a local ucred of the size passed.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let r = libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        );
        if r == 0 {
            Ok(cred.uid)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// An interface address that can multicast (up, not loopback): for mDNS.
#[derive(Debug, Clone, Copy)]
pub struct LinkAddr {
    pub addr: std::net::IpAddr,
    pub netmask: std::net::IpAddr,
    pub index: u32,
}

/// The addresses of every interface that is up and can multicast.
pub fn multicast_addrs() -> Vec<LinkAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which we walk read-only and free
    // once; each sockaddr is read as the family it says it is.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut p = list;
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            let flags = ifa.ifa_flags as libc::c_int;
            let wanted = flags & libc::IFF_UP != 0
                && flags & libc::IFF_MULTICAST != 0
                && flags & libc::IFF_LOOPBACK == 0;
            if !wanted || ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
                continue;
            }
            let index = libc::if_nametoindex(ifa.ifa_name);
            let ip = |sa: *const libc::sockaddr| -> Option<IpAddr> {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let s = &*(sa.cast::<libc::sockaddr_in>());
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr))))
                    }
                    libc::AF_INET6 => {
                        let s = &*(sa.cast::<libc::sockaddr_in6>());
                        Some(IpAddr::V6(Ipv6Addr::from(s.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            };
            if let (Some(addr), Some(netmask)) = (ip(ifa.ifa_addr), ip(ifa.ifa_netmask)) {
                out.push(LinkAddr {
                    addr,
                    netmask,
                    index,
                });
            }
        }
        libc::freeifaddrs(list);
    }
    out
}

/// Set a socket's outgoing multicast interface and hop limit (255, as
/// mDNS wants).
pub fn multicast_out(sock: &std::net::UdpSocket, on: &LinkAddr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let ttl: libc::c_int = 255;
    // SAFETY: setsockopt reads option values of the sizes passed, from
    // locals that outlive the calls.
    let r = unsafe {
        match on.addr {
            std::net::IpAddr::V4(a) => {
                let ifaddr = libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                };
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    (&raw const ifaddr).cast(),
                    std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
                ) | libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_TTL,
                    (&raw const ttl).cast(),
                    4,
                )
            }
            std::net::IpAddr::V6(_) => {
                let index = on.index as libc::c_int;
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_IF,
                    (&raw const index).cast(),
                    4,
                ) | libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_HOPS,
                    (&raw const ttl).cast(),
                    4,
                )
            }
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A new FIFO at `path` (mode 0600), opened for reading and writing
/// (so that opening cannot block, and it never reads an end of file),
/// non-blocking and close-on-exec.
pub fn fifo(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: mkfifo reads the NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

/// Write all of `bytes` to non-blocking `file`, waiting for room at most
/// until `deadline`.
pub fn write_by(
    mut file: &std::fs::File,
    mut bytes: &[u8],
    deadline: std::time::Instant,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                let mut p = [libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                }];
                poll_for(&mut p, 100);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An inotify descriptor (non-blocking) watching directory `dir` for
/// files made, written and closed, and removed.
pub fn watch_dir(dir: &std::path::Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: inotify_init1 makes a new descriptor, which we own at once;
    // inotify_add_watch reads the NUL-terminated path.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mask = libc::IN_CREATE | libc::IN_CLOSE_WRITE | libc::IN_DELETE | libc::IN_ONLYDIR;
        if libc::inotify_add_watch(fd, path.as_ptr(), mask) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(owned)
    }
}

/// Read what `fd` (non-blocking) has now: 0 when nothing.
pub fn read_now(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: read writes at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        return Ok(n.unsigned_abs());
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock => Ok(0),
        std::io::ErrorKind::Interrupted => read_now(fd, buf),
        _ => Err(e),
    }
}

/// Wait up to `ms` milliseconds (-1: without a limit) until any of `fds`
/// has something to read, an end or an error; which ones. A descriptor
/// given as -1 is passed over.
pub fn readable<const N: usize>(fds: [std::os::fd::RawFd; N], ms: i32) -> [bool; N] {
    let mut p = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    poll_for(&mut p, ms);
    p.map(|q| q.revents != 0)
}

/// `readable` for any number of descriptors.
pub fn readable_of(fds: &[std::os::fd::RawFd], ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    poll_for(&mut p, ms);
    p.iter().map(|q| q.revents != 0).collect()
}

/// poll(2) for `p` (the events each asks for); on a timeout or an error
/// nothing is ready.
fn poll_for(p: &mut [libc::pollfd], ms: i32) {
    // SAFETY: poll reads and fills the pollfds of the slice, no more.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if n <= 0 {
        p.iter_mut().for_each(|q| q.revents = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn connect_tcp_connects_refuses_and_times_out() {
        use std::time::{Duration, Instant};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect_tcp(addr, Duration::from_secs(2)).unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        if let Ok(l6) = TcpListener::bind("[::1]:0") {
            let a6 = l6.local_addr().unwrap();
            assert_eq!(
                connect_tcp(a6, Duration::from_secs(2))
                    .unwrap()
                    .peer_addr()
                    .unwrap(),
                a6
            );
        }
        drop(l);
        let e = connect_tcp(addr, Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        // A listener with a full backlog drops further handshakes: the
        // connect waits, and the timeout ends it.
        let full = listen_tcp(
            std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            0,
            false,
        )
        .unwrap();
        let at = full.local_addr().unwrap();
        let _held: Vec<_> = (0..2)
            .filter_map(|_| connect_tcp(at, Duration::from_millis(300)).ok())
            .collect();
        let start = Instant::now();
        let e = connect_tcp(at, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            connect_tcp(at, Duration::ZERO).unwrap_err().kind(),
            std::io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn stat_fields_after_the_command_name() {
        let line =
            "4242 (ssh (my) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 9 9";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4242,
                session: 4242,
                threads: 1,
                start: 987654
            })
        );
        let me = stat(std::process::id()).unwrap();
        assert_ne!(me.state, 'Z');
        assert_eq!(me.start, stat(std::process::id()).unwrap().start);
        assert!(alive(std::process::id()) && !alive(u32::MAX));
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(owner(std::process::id()), Some(euid));
    }

    #[test]
    fn loopback_listeners_from_proc_net_tcp() {
        // 127.0.0.1 as this machine prints it: the address's bytes read as
        // a native integer.
        let lo = format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]));
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: {lo}:0E30 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 00000000:0E31 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0
   2: {lo}:0E32 {lo}:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 20 4 30 10 -1
"
        );
        assert_eq!(listening_on_loopback(&table), [(3632, 4242)]);
        // A listener held by a process group of its own (a child that
        // inherited it) is found for that group only; then not at all.
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // SAFETY: fcntl on a descriptor we own: let the child inherit it.
        unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        drop(l);
        let group = child.id();
        let listeners = loopback_listeners();
        assert!(listeners.iter().any(|(p, _)| *p == port), "{listeners:?}");
        assert!(group_listens(group, &[port], &listeners));
        assert!(!group_listens(1, &[port], &listeners));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!group_listens(group, &[port], &loopback_listeners()));
    }

    #[test]
    fn fields_in_kib() {
        assert_eq!(
            kib_field("VmPeak:  1 kB\nVmHWM:   5120 kB\n", "VmHWM:"),
            Some(5120)
        );
        assert_eq!(kib_field("x", "VmHWM:"), None);
    }
}
