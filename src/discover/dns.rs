//! DNS messages as mDNS/DNS-SD uses them (RFC 1035, 6762, 6763): a query
//! to send, and a bounded parser for what comes back. Everything here comes
//! from the network: names are at most 255 bytes of at most 63-byte
//! labels, compression pointers may only point backwards and at most 32
//! times per name, counts are checked against the message, and at most
//! MAX_RECORDS records are read from one message. Nothing is trusted for
//! more than its bytes: names and TXT values are kept as text to be shown
//! escaped, never as anything a shell or a path would read.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// Records read from one message, at most.
pub const MAX_RECORDS: usize = 256;
const MAX_NAME: usize = 255;
const MAX_JUMPS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Ptr(String),
    Srv { port: u16, target: String },
    Txt(Vec<String>),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Lowercase, dot-separated, without the final dot.
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

/// A query for `name`'s records of type `qtype`, with message id `id`
/// (a legacy unicast query: the responder answers to our port, by
/// unicast, repeating the id).
pub fn query(id: u16, questions: &[(&str, u16)]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 0]); // a standard query
    m.extend_from_slice(&(questions.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for (name, qtype) in questions {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = &label.as_bytes()[..label.len().min(63)];
            m.push(label.len() as u8);
            m.extend_from_slice(label);
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
    }
    m
}

/// The id and the answer and additional records of a response (records
/// of other types and classes are passed over). `Err` for anything that
/// is not a well-formed response.
pub fn parse(msg: &[u8]) -> Result<(u16, Vec<Record>), String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "message cut short".to_string())
    };
    let id = u16_at(0)?;
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err("a query, not a response".into());
    }
    let (qd, an, ns, ar) = (u16_at(4)?, u16_at(6)?, u16_at(8)?, u16_at(10)?);
    let mut at = 12;
    for _ in 0..qd {
        let (_, next) = name(msg, at)?;
        at = next + 4;
    }
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    let mut out = Vec::new();
    for _ in 0..total.min(MAX_RECORDS) {
        let (owner, next) = name(msg, at)?;
        let rtype = u16_at(next)?;
        let class = u16_at(next + 2)? & 0x7fff; // the cache-flush bit
        let ttl = msg
            .get(next + 4..next + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("message cut short")?;
        let len = usize::from(u16_at(next + 8)?);
        let start = next + 10;
        let rdata = msg
            .get(start..start + len)
            .ok_or("record runs past the message")?;
        at = start + len;
        if class != CLASS_IN {
            continue;
        }
        let data = match rtype {
            TYPE_PTR => Data::Ptr(name(msg, start)?.0),
            TYPE_SRV if len >= 7 => Data::Srv {
                port: u16::from_be_bytes([rdata[4], rdata[5]]),
                target: name(msg, start + 6)?.0,
            },
            TYPE_TXT => Data::Txt(txt(rdata)),
            TYPE_A if len == 4 => Data::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            TYPE_AAAA if len == 16 => {
                let b: [u8; 16] = rdata.try_into().map_err(|_| "bad AAAA")?;
                Data::Aaaa(Ipv6Addr::from(b))
            }
            _ => continue,
        };
        out.push(Record {
            name: owner,
            ttl,
            data,
        });
    }
    Ok((id, out))
}

/// The name at `at` and where the bytes after it start (after the first
/// pointer, if it is compressed).
fn name(msg: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at).ok_or("name runs past the message")?;
        match len {
            0 => {
                return Ok((out, after.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *msg.get(at + 1).ok_or("pointer cut short")?;
                let to = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                // Backwards only: a pointer can never form a loop.
                if to >= at || jumps == MAX_JUMPS {
                    return Err("bad compression pointer".into());
                }
                jumps += 1;
                after.get_or_insert(at + 2);
                at = to;
            }
            l if l <= 63 => {
                let l = usize::from(l);
                let label = msg
                    .get(at + 1..at + 1 + l)
                    .ok_or("label runs past the message")?;
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&String::from_utf8_lossy(label).to_lowercase());
                if out.len() > MAX_NAME {
                    return Err("name longer than 255 bytes".into());
                }
                at += 1 + l;
            }
            _ => return Err("bad label length".into()),
        }
    }
}

/// TXT strings, each at most 255 bytes, as text.
fn txt(mut rdata: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let len = usize::from(len).min(rest.len());
        out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
        rdata = &rest[len..];
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response as Avahi sends one for a legacy query: PTR, SRV, TXT, A.
    pub(crate) fn response(id: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 3]);
        let svc = 12;
        // _distcc._tcp.local PTR w1._distcc._tcp.local
        m.extend_from_slice(b"\x07_distcc\x04_tcp\x05local\x00");
        m.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 120]);
        m.extend_from_slice(&[0, 5, 2, b'w', b'1', 0xc0, svc as u8]);
        let inst = m.len() - 5;
        // w1._distcc._tcp.local SRV 0 0 3632 w1.local
        m.extend_from_slice(&[0xc0, inst as u8, 0, 33, 0x80, 1, 0, 0, 0, 120]);
        m.extend_from_slice(&[0, 11, 0, 0, 0, 0, 0x0e, 0x30, 2, b'w', b'1']);
        m.extend_from_slice(&[0xc0, (svc + 13) as u8]);
        let host = m.len() - 5;
        // TXT jobs=4 cc_version=12
        let txt = b"\x06jobs=4\x0dcc_version=12";
        m.extend_from_slice(&[
            0xc0,
            inst as u8,
            0,
            16,
            0,
            1,
            0,
            0,
            0,
            120,
            0,
            txt.len() as u8,
        ]);
        m.extend_from_slice(txt);
        // w1.local A 10.0.0.7
        m.extend_from_slice(&[
            0xc0, host as u8, 0, 1, 0, 1, 0, 0, 0, 120, 0, 4, 10, 0, 0, 7,
        ]);
        m
    }

    #[test]
    fn a_response_is_read_back() {
        let (id, recs) = parse(&response(77)).unwrap();
        assert_eq!(id, 77);
        let data: Vec<&Data> = recs.iter().map(|r| &r.data).collect();
        assert_eq!(
            data,
            [
                &Data::Ptr("w1._distcc._tcp.local".into()),
                &Data::Srv {
                    port: 3632,
                    target: "w1.local".into()
                },
                &Data::Txt(vec!["jobs=4".into(), "cc_version=12".into()]),
                &Data::A(Ipv4Addr::new(10, 0, 0, 7)),
            ]
        );
        assert_eq!(recs[1].name, "w1._distcc._tcp.local");
    }

    #[test]
    fn hostile_messages_are_refused_or_bounded() {
        let good = response(1);
        // Every cut of a good message: an error or fewer records, no panic.
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
        // A pointer to itself, and one forwards: a loop is impossible.
        let mut looped = good.clone();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert!(parse(&looped).is_err());
        // A name running past the message.
        let mut long = good[..12].to_vec();
        long[7] = 1;
        long.extend_from_slice(&[63; 10]);
        assert!(parse(&long).is_err());
        // 65535 announced records in a short message: bounded, an error.
        let mut many = good.clone();
        many[10] = 0xff;
        many[11] = 0xff;
        assert!(parse(&many).is_err());
        // A query is not a response.
        let q = query(5, &[("_distcc._tcp.local", TYPE_PTR)]);
        assert!(parse(&q).is_err());
    }

    #[test]
    fn a_query_names_the_service() {
        let q = query(9, &[("_distcc._tcp.local", TYPE_PTR)]);
        assert_eq!(&q[..6], &[0, 9, 0, 0, 0, 1]);
        assert!(q.windows(8).any(|w| w == b"\x07_distcc"));
        assert_eq!(&q[q.len() - 4..], &[0, 12, 0, 1]);
    }
}
