//! Asking one address of a worker, over blocking sockets bounded by a
//! deadline: resolve the name, read the stats reply, check that the job
//! port accepts, and run the compile check through it when asked.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Instant;

use crate::config::hostspec::Host;
use crate::probe::check;
use crate::probe::stage::{Stage, StageCell};
use crate::worker::fault::Fault;
use crate::worker::stats::{self, Stats};

/// What one address answered.
pub enum Answer {
    Stats(Stats),
    /// The stats port refused, the job port at `job` accepted.
    NoStats {
        job: SocketAddr,
        why: String,
    },
}

/// What the compile check showed of the worker's compiler, when it ran.
pub type Compiler = Option<String>;

/// The addresses to ask for a host's stats port, or why there are none.
pub fn resolve(host: &Host, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = match host {
        Host::V4(a) => vec![SocketAddr::new((*a).into(), port)],
        Host::V6(a) => vec![SocketAddr::new((*a).into(), port)],
        Host::Name(n) => match (n.as_str(), port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => return Err(format!("name did not resolve: {}", resolver_error(&e))),
        },
    };
    if addrs.is_empty() {
        return Err("name did not resolve: no address".into());
    }
    Ok(addrs)
}

/// Read and parse the stats reply at `addr`, then check the job port, and
/// with `check`, compile through it. A refused stats port is not fatal:
/// stock distccd has none, and its job port decides. `forwarded`: `addr`
/// is an ssh forward's local end.
pub fn ask(
    addr: SocketAddr,
    job_port: u16,
    deadline: Instant,
    check: &Option<(String, Instant)>,
    stage: &StageCell,
    forwarded: bool,
) -> Result<(Answer, Compiler), Fault> {
    stage.set(Stage::Connecting);
    let stats_said = format!("stats port {}", addr.port());
    let stats = match connect(addr, deadline) {
        Ok(mut sock) => {
            stage.set(Stage::Reading);
            let buf = read_reply(&mut sock, deadline, forwarded)?;
            drop(sock);
            Ok(stats::parse(&buf)?)
        }
        Err(Fault::Refused(why)) => Err(format!("{stats_said}: {why}")),
        Err(e) => return Err(e.context(&stats_said)),
    };
    stage.set(Stage::JobPort);
    let job_addr = SocketAddr::new(addr.ip(), job_port);
    let mut job = connect(job_addr, deadline).map_err(|e| {
        let e = e.context(&format!("job port {job_port} closed"));
        // Neither port: say both, the stats port first as it was asked first.
        match (&stats, e) {
            (Err(no_stats), e) if e != Fault::Timeout => Fault::Refused(format!("{no_stats}; {e}")),
            (_, e) => e,
        }
    })?;
    let mut made_by = None;
    if let Some((compiler, end)) = check {
        stage.set(Stage::Checking);
        let object = check::run(&mut job, compiler, *end)?;
        made_by = Some(
            crate::probe::toolchain::identify(&object).unwrap_or_else(|e| format!("unknown ({e})")),
        );
    }
    let answer = match stats {
        Ok(stats) => Answer::Stats(stats),
        Err(why) => Answer::NoStats { job: job_addr, why },
    };
    Ok((answer, made_by))
}

fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Fault> {
    let left = deadline.saturating_duration_since(Instant::now());
    crate::sys::connect_tcp(addr, left).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => Fault::Refused("connection refused".into()),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Fault::Refused(e.to_string())
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Fault::Timeout,
        _ => Fault::Io(e.to_string()),
    })
}

/// Read until the closing tag, the end of the stream, or the size cap,
/// re-arming the read timeout so that a trickle cannot pass the deadline.
fn read_reply(sock: &mut TcpStream, deadline: Instant, forwarded: bool) -> Result<Vec<u8>, Fault> {
    // Through an ssh forward, say at once that we send nothing: this makes
    // the client answer the channel's opening with a packet of its own,
    // which acknowledges it; otherwise sshd holds the reply back (Nagle)
    // until the client's delayed acknowledgement, 40 ms later. distccd
    // itself reads nothing on its stats port: a direct probe spares the
    // call (the close after the reply ends the connection).
    if forwarded {
        let _ = sock.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fault::Timeout);
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| Fault::Io(e.to_string()))?;
        match sock.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => {
                let room = stats::MAX_REPLY_BYTES - buf.len();
                buf.extend_from_slice(&chunk[..n.min(room)]);
                if stats::is_complete(&buf) {
                    return Ok(buf);
                }
                if buf.len() >= stats::MAX_REPLY_BYTES {
                    return Err(Fault::Protocol(format!(
                        "stats reply larger than {} KiB without </distccstats>",
                        stats::MAX_REPLY_BYTES / 1024
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Fault::Timeout);
            }
            Err(e) => return Err(Fault::Io(format!("reading the stats reply: {e}"))),
        }
    }
}

/// One stats reply from `addr`, by `deadline` (for `tally`).
pub fn stats_at(addr: SocketAddr, deadline: Instant) -> Result<Stats, Fault> {
    let mut sock = connect(addr, deadline)?;
    // Perhaps a forward: the tally does not know, and counts once.
    let buf = read_reply(&mut sock, deadline, true)?;
    stats::parse(&buf)
}

fn resolver_error(e: &io::Error) -> String {
    // std wraps getaddrinfo's message as "failed to lookup address
    // information: Name or service not known"; keep the resolver's part.
    let s = e.to_string();
    s.rsplit_once(": ")
        .map_or(s.clone(), |(_, tail)| tail.to_string())
}
