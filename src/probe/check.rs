//! The compile check: ask a worker to compile a tiny preprocessed C file in
//! distcc's own protocol (version 1), as the distcc client would.
//!
//! Request:  `DIST` 1, `ARGC` n, n × `ARGV` string, `DOTI` source.
//! Reply:    `DONE` 1, `STAT` wait status, `SERR` text, `SOUT` text,
//!           `DOTO` object file.
//! Every token is 4 characters and 8 lower-case hex digits; a string or
//! file follows its token, with the digits giving its length.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::worker::fault::Fault;

/// What the worker compiles: small, and valid C for any C compiler.
pub const SOURCE: &str = "int distcc_auto_check(int x) { return x * 2 + 1; }\n";
/// The file name we say it came from; distccd keys the language on it.
pub const FILE: &str = "distcc-auto-check.c";
/// Cap on anything the worker sends back.
const MAX_ITEM: u32 = 1 << 20;

/// The request bytes for compiling SOURCE with `compiler`.
pub fn request(compiler: &str) -> Vec<u8> {
    let argv = [compiler, "-c", FILE, "-o", "distcc-auto-check.o"];
    let mut out = Vec::new();
    token(&mut out, "DIST", 1);
    token(&mut out, "ARGC", argv.len() as u32);
    for a in argv {
        token(&mut out, "ARGV", a.len() as u32);
        out.extend_from_slice(a.as_bytes());
    }
    token(&mut out, "DOTI", SOURCE.len() as u32);
    out.extend_from_slice(SOURCE.as_bytes());
    out
}

fn token(out: &mut Vec<u8>, name: &str, value: u32) {
    out.extend_from_slice(format!("{name}{value:08x}").as_bytes());
}

/// What the worker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The compiler's wait status (0: compiled).
    pub status: u32,
    pub stderr: String,
    /// The object file (empty when the compile failed).
    pub object: Vec<u8>,
}

/// The object file of a successful compile, or why there is none.
pub fn verdict(reply: Result<Reply, Fault>, compiler: &str) -> Result<Vec<u8>, Fault> {
    match reply {
        Ok(r) if r.status == 0 && !r.object.is_empty() => Ok(r.object),
        Ok(r) if r.status == 0 => Err(Fault::Compile(format!(
            "compile check: '{compiler}' produced no object file"
        ))),
        Ok(r) => {
            let text: String = r.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = crate::worker::shown(&text, 300);
            let code = if r.status & 0x7f == 0 {
                (r.status >> 8) & 0xff
            } else {
                r.status
            };
            Err(Fault::Compile(if text.is_empty() {
                format!("compile check: '{compiler}' failed (status {code})")
            } else {
                format!("compile check: '{compiler}' failed (status {code}): {text}")
            }))
        }
        Err(e) => Err(e),
    }
}

/// Parse a reply from a reader (the socket, with its deadline applied by
/// the caller through read timeouts).
pub fn read_reply(r: &mut impl Read, compiler: &str) -> Result<Reply, Fault> {
    let refused = || {
        Fault::Protocol(format!(
            "compile check: the worker closed the connection without compiling: \
             '{compiler}' is probably not in its allowed compilers \
             (/usr/lib/distcc; run update-distcc-symlinks there) or not installed"
        ))
    };
    let first = match read_token(r) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(refused()),
        Err(e) => return Err(io_reason(e)),
    };
    if first != ("DONE".into(), 1) {
        return Err(Fault::Protocol(format!(
            "compile check: not a distcc reply (got {:?} first)",
            first.0
        )));
    }
    let mut status = None;
    let mut stderr = String::new();
    let mut object = None;
    while object.is_none() {
        let (name, n) = read_token(r).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                Fault::Protocol("compile check: the reply ended early".into())
            }
            _ => io_reason(e),
        })?;
        match name.as_str() {
            "STAT" => status = Some(n),
            "SERR" | "SOUT" | "DOTO" => {
                if n > MAX_ITEM {
                    return Err(Fault::Protocol(format!(
                        "compile check: {name} of {n} bytes is too large"
                    )));
                }
                let mut buf = vec![0; n as usize];
                r.read_exact(&mut buf).map_err(io_reason)?;
                match name.as_str() {
                    "SERR" => stderr = String::from_utf8_lossy(&buf).into_owned(),
                    "DOTO" => object = Some(buf),
                    _ => {}
                }
                // A failed compile ends after SOUT with an empty DOTO.
            }
            other => {
                return Err(Fault::Protocol(format!(
                    "compile check: unexpected token {other:?} in the reply"
                )));
            }
        }
    }
    Ok(Reply {
        status: status
            .ok_or_else(|| Fault::Protocol("compile check: the reply has no STAT".into()))?,
        stderr,
        object: object.unwrap_or_default(),
    })
}

fn read_token(r: &mut impl Read) -> io::Result<(String, u32)> {
    let mut buf = [0u8; 12];
    r.read_exact(&mut buf)?;
    let name = String::from_utf8_lossy(&buf[..4]).into_owned();
    let hex = std::str::from_utf8(&buf[4..])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad token"))?;
    let n = u32::from_str_radix(hex, 16).map_err(|_| {
        let token = crate::worker::shown(&format!("{name}{hex}"), 12);
        io::Error::new(io::ErrorKind::InvalidData, format!("bad token {token}"))
    })?;
    Ok((name, n))
}

fn io_reason(e: io::Error) -> Fault {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fault::Timeout,
        io::ErrorKind::InvalidData => {
            Fault::Protocol(format!("compile check: not a distcc reply ({e})"))
        }
        _ => Fault::Io(format!("compile check: {e}")),
    }
}

/// Run the check on an open connection to the job port, by `deadline`;
/// the object file it made.
pub fn run(sock: &mut TcpStream, compiler: &str, deadline: Instant) -> Result<Vec<u8>, Fault> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Fault::Timeout);
    }
    sock.set_write_timeout(Some(left)).map_err(io_reason)?;
    sock.write_all(&request(compiler)).map_err(io_reason)?;
    let mut reader = Deadlined { sock, deadline };
    verdict(read_reply(&mut reader, compiler), compiler)
}

/// A reader whose every read is bounded by one deadline.
struct Deadlined<'a> {
    sock: &'a mut TcpStream,
    deadline: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_distcc_protocol_1() {
        let r = String::from_utf8(request("cc")).unwrap();
        assert!(r.starts_with("DIST00000001ARGC00000005ARGV00000002ccARGV00000002-cARGV00000013distcc-auto-check.c"), "{r}");
        assert!(
            r.ends_with(&format!("DOTI{:08x}{SOURCE}", SOURCE.len())),
            "{r}"
        );
    }

    #[test]
    fn replies() {
        let ok = b"DONE00000001STAT00000000SERR00000000SOUT00000000DOTO00000004\x7fELF".to_vec();
        assert_eq!(
            verdict(read_reply(&mut &ok[..], "cc"), "cc"),
            Ok(b"\x7fELF".to_vec())
        );

        // Exit status 1 is wait status 0x100.
        let mut failed = b"DONE00000001STAT00000100".to_vec();
        let text = b"cc: error: bad thing\n  here\n";
        failed.extend_from_slice(format!("SERR{:08x}", text.len()).as_bytes());
        failed.extend_from_slice(text);
        failed.extend_from_slice(b"SOUT00000000DOTO00000000");
        assert_eq!(
            verdict(read_reply(&mut &failed[..], "cc"), "cc"),
            Err(Fault::Compile(
                "compile check: 'cc' failed (status 1): cc: error: bad thing here".into()
            ))
        );

        let e = verdict(read_reply(&mut &b""[..], "gcc-99"), "gcc-99")
            .unwrap_err()
            .to_string();
        assert!(e.contains("closed the connection without compiling: 'gcc-99' is probably not in its allowed compilers"), "{e}");
        for (junk, want) in [
            (&b"HTTP/1.0 200 OK\r\n\r\n"[..], "not a distcc reply"),
            (&b"DONE00000001STAT"[..], "ended early"),
            (&b"DONE00000001XXXX00000000"[..], "unexpected token"),
            (&b"DONE00000001SERRffffffff"[..], "too large"),
            (&b"DONE00000001STAT0000zz00"[..], "not a distcc reply"),
        ] {
            let e = verdict(read_reply(&mut &junk[..], "cc"), "cc").unwrap_err();
            assert!(matches!(e, Fault::Protocol(_)), "{junk:?}: {e:?}");
            assert!(e.to_string().contains(want), "{junk:?}: {e}");
        }
    }
}
