//! The client side of OpenSSH's connection multiplexing protocol
//! (PROTOCOL.mux in OpenSSH's sources): what `ssh -O check`, `-O forward`,
//! `-O cancel` and `-O exit` send to a master's control socket, spoken
//! directly, so that reusing a master costs no ssh process.
//!
//! A packet is a big-endian `u32` length and a body; a body starts with a
//! `u32` type, requests then carry a request ID that the reply echoes.
//! Both sides start with a hello (type 1, protocol version 4).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const HELLO: u32 = 0x0000_0001;
const VERSION: u32 = 4;
const ALIVE_CHECK: u32 = 0x1000_0004;
const TERMINATE: u32 = 0x1000_0005;
const OPEN_FWD: u32 = 0x1000_0006;
const CLOSE_FWD: u32 = 0x1000_0007;
const OK: u32 = 0x8000_0001;
const PERMISSION_DENIED: u32 = 0x8000_0002;
const FAILURE: u32 = 0x8000_0003;
const ALIVE: u32 = 0x8000_0005;
/// Forwarding type: local (`-L`).
const FWD_LOCAL: u32 = 1;
/// No reply of the protocol comes near this; a larger length is garbage.
const MAX_PACKET: u32 = 256 * 1024;

/// A local forward as `-L 127.0.0.1:LISTEN:localhost:CONNECT` gives it:
/// the only kind distcc-auto asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub listen: u16,
    pub connect: u16,
}

impl Forward {
    /// `LISTEN:CONNECT`, as the holder process gets it on its command line.
    pub fn parse(s: &str) -> Option<Forward> {
        let (l, c) = s.split_once(':')?;
        Some(Forward {
            listen: crate::config::whole(l).filter(|&p| p > 0)?,
            connect: crate::config::whole(c).filter(|&p| p > 0)?,
        })
    }

    pub fn render(&self) -> String {
        format!("{}:{}", self.listen, self.connect)
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum MuxError {
    /// The socket: gone, refused, closed, timed out.
    Io(io::Error),
    /// The master answered, and said no (its words).
    Refused(String),
    /// The master answered something this protocol does not allow.
    Protocol(String),
    /// The socket is another user's: never spoken to.
    NotOurs(u32),
}

impl std::fmt::Display for MuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MuxError::Io(e) => write!(f, "control socket: {e}"),
            MuxError::Refused(why) => write!(f, "the ssh master refused: {why}"),
            MuxError::Protocol(why) => write!(f, "the ssh master answered oddly: {why}"),
            MuxError::NotOurs(uid) => write!(
                f,
                "the control socket is served by uid {uid}, not by us: not used"
            ),
        }
    }
}

impl From<io::Error> for MuxError {
    fn from(e: io::Error) -> Self {
        MuxError::Io(e)
    }
}

/// One connection to a master. While it is open the master counts as in
/// use, and ControlPersist does not run down.
#[derive(Debug)]
pub struct Mux {
    stream: UnixStream,
    next_id: u32,
}

impl Mux {
    /// Connect and exchange hellos, all before `deadline`. The process
    /// that listens must be this user's (`SO_PEERCRED`): whatever a path
    /// leads to, a socket another user made is never spoken to.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Mux, MuxError> {
        let stream = UnixStream::connect(path)?;
        let uid = crate::sys::peer_uid(&stream)?;
        if uid != crate::sys::euid() {
            return Err(MuxError::NotOurs(uid));
        }
        Mux::over(stream, deadline)
    }

    /// Exchange hellos over a connected stream.
    pub fn over(stream: UnixStream, deadline: Instant) -> Result<Mux, MuxError> {
        let mut mux = Mux { stream, next_id: 1 };
        mux.bound(deadline)?;
        mux.send(&hello())?;
        let body = mux.receive()?;
        match read_u32(&body, 0) {
            Some(HELLO) if read_u32(&body, 4) == Some(VERSION) => Ok(mux),
            Some(HELLO) => Err(MuxError::Protocol(format!(
                "protocol version {:?}, not {VERSION}",
                read_u32(&body, 4)
            ))),
            other => Err(MuxError::Protocol(format!("{other:?} instead of hello"))),
        }
    }

    /// Let every later read and write end by `deadline`.
    pub fn bound(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left))?;
        self.stream.set_write_timeout(Some(left))
    }

    /// The master's PID (`ssh -O check`).
    pub fn alive(&mut self) -> Result<u32, MuxError> {
        let body = self.request(ALIVE_CHECK, &[])?;
        match read_u32(&body, 0) {
            Some(ALIVE) => {
                read_u32(&body, 8).ok_or_else(|| MuxError::Protocol("a short alive reply".into()))
            }
            _ => Err(unexpected(&body)),
        }
    }

    /// Add a local forward (`ssh -O forward -L ...`).
    pub fn forward(&mut self, fwd: Forward) -> Result<(), MuxError> {
        let body = self.request(OPEN_FWD, &forward_body(fwd))?;
        ok(&body)
    }

    /// Remove a local forward (`ssh -O cancel -L ...`); connections open
    /// through it stay open.
    pub fn cancel(&mut self, fwd: Forward) -> Result<(), MuxError> {
        let body = self.request(CLOSE_FWD, &forward_body(fwd))?;
        ok(&body)
    }

    /// Ask the master to exit now (`ssh -O exit`).
    pub fn terminate(&mut self) -> Result<(), MuxError> {
        match self.request(TERMINATE, &[]) {
            Ok(body) => ok(&body),
            // OpenSSH's master exits without replying.
            Err(MuxError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A connection whose hellos were exchanged by another process.
    pub fn adopt(stream: UnixStream) -> Mux {
        // The IDs only need to match their replies: start far from the
        // ones the connection used before.
        Mux {
            stream,
            next_id: 1 << 16,
        }
    }

    /// The connection itself, for a process that is to hold it.
    pub fn try_clone_stream(&self) -> io::Result<UnixStream> {
        self.stream.try_clone()
    }

    fn request(&mut self, kind: u32, rest: &[u8]) -> Result<Vec<u8>, MuxError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = Vec::with_capacity(8 + rest.len());
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(rest);
        self.send(&body)?;
        let reply = self.receive()?;
        match read_u32(&reply, 4) {
            Some(got) if got == id => Ok(reply),
            got => Err(MuxError::Protocol(format!(
                "reply to request {got:?}, not {id}"
            ))),
        }
    }

    fn send(&mut self, body: &[u8]) -> io::Result<()> {
        self.stream.write_all(&packet(body))
    }

    fn receive(&mut self) -> Result<Vec<u8>, MuxError> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_PACKET {
            return Err(MuxError::Protocol(format!("a packet of {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }
}

fn hello() -> Vec<u8> {
    [HELLO.to_be_bytes(), VERSION.to_be_bytes()].concat()
}

fn packet(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("a small packet");
    [&len.to_be_bytes()[..], body].concat()
}

fn string(s: &str, out: &mut Vec<u8>) {
    let len = u32::try_from(s.len()).expect("a short string");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Type, listen host and port, connect host and port.
fn forward_body(fwd: Forward) -> Vec<u8> {
    let mut out = FWD_LOCAL.to_be_bytes().to_vec();
    string("127.0.0.1", &mut out);
    out.extend_from_slice(&u32::from(fwd.listen).to_be_bytes());
    string("localhost", &mut out);
    out.extend_from_slice(&u32::from(fwd.connect).to_be_bytes());
    out
}

fn read_u32(body: &[u8], at: usize) -> Option<u32> {
    let b = body.get(at..at + 4)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// The string at `at`, lossily, or "".
fn read_string(body: &[u8], at: usize) -> String {
    let Some(len) = read_u32(body, at) else {
        return String::new();
    };
    let end = (at + 4).saturating_add(len as usize).min(body.len());
    String::from_utf8_lossy(body.get(at + 4..end).unwrap_or_default())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn ok(body: &[u8]) -> Result<(), MuxError> {
    match read_u32(body, 0) {
        Some(OK) => Ok(()),
        _ => Err(unexpected(body)),
    }
}

fn unexpected(body: &[u8]) -> MuxError {
    match read_u32(body, 0) {
        Some(FAILURE | PERMISSION_DENIED) => MuxError::Refused(read_string(body, 8)),
        other => MuxError::Protocol(format!("reply type {other:#x?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_is_encoded_as_ssh_sends_it() {
        let body = forward_body(Forward {
            listen: 40001,
            connect: 3633,
        });
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 9];
        want.extend_from_slice(b"127.0.0.1");
        want.extend_from_slice(&40001u32.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 9]);
        want.extend_from_slice(b"localhost");
        want.extend_from_slice(&3633u32.to_be_bytes());
        assert_eq!(body, want);
        assert_eq!(packet(&hello()), [0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4]);
    }

    #[test]
    fn refusals_carry_the_masters_words() {
        let mut reply = FAILURE.to_be_bytes().to_vec();
        reply.extend_from_slice(&7u32.to_be_bytes());
        string("Port forwarding failed", &mut reply);
        let e = ok(&reply).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the ssh master refused: Port forwarding failed"
        );
        // A short or unknown reply is a protocol error, never a panic.
        for bad in [
            &[][..],
            &[0, 0],
            &[0x80, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(ok(bad).is_err());
        }
    }

    #[test]
    fn forwards_on_the_command_line() {
        let f = Forward::parse("40001:3633").unwrap();
        assert_eq!(f.render(), "40001:3633");
        for bad in ["", "1", "0:3633", "1:70000", "a:1", "1:2:3", "+1:2"] {
            assert_eq!(Forward::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_real_master_is_spoken_to_like_ssh_does() {
        // A stand-in master on a socketpair: what it reads is what ssh's
        // own master would, and it answers as PROTOCOL.mux says.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let master = std::thread::spawn(move || {
            let read = |s: &mut UnixStream| {
                let mut len = [0u8; 4];
                s.read_exact(&mut len).unwrap();
                let mut b = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut b).unwrap();
                b
            };
            theirs.write_all(&packet(&hello())).unwrap();
            assert_eq!(read(&mut theirs), hello());
            let req = read(&mut theirs);
            assert_eq!(read_u32(&req, 0), Some(ALIVE_CHECK));
            let mut reply = ALIVE.to_be_bytes().to_vec();
            reply.extend_from_slice(&req[4..8]);
            reply.extend_from_slice(&4242u32.to_be_bytes());
            theirs.write_all(&packet(&reply)).unwrap();
            let req = read(&mut theirs);
            assert_eq!(read_u32(&req, 0), Some(OPEN_FWD));
            let reply = [&OK.to_be_bytes()[..], &req[4..8]].concat();
            theirs.write_all(&packet(&reply)).unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut mux = Mux::over(ours, deadline).unwrap();
        assert_eq!(mux.alive().unwrap(), 4242);
        mux.forward(Forward {
            listen: 1,
            connect: 2,
        })
        .unwrap();
        master.join().unwrap();
        // The master is gone: an error, not a hang.
        assert!(
            mux.cancel(Forward {
                listen: 1,
                connect: 2
            })
            .is_err()
        );
    }
}
