//! distcc's state files: every distcc client writes what it is doing to
//! `$DISTCC_DIR/state/binstate_PID`, rewritten whole at each phase and
//! removed when it exits; distccmon reads them. The format is distcc's
//! `struct dcc_task_state` (src/state.h), written raw: on LP64 296 bytes,
//! `size_t struct_size; unsigned long magic, cpid; char file[128],
//! host[128]; int slot; enum dcc_phase curr_phase; void *next`.

/// What distcc writes as `magic` ("DIH\0").
pub const MAGIC: u64 = 0x4449_4800;
/// The record's size on LP64 (what distcc writes as `struct_size`).
pub const SIZE: usize = 296;

/// distcc's `enum dcc_phase`, in the order a compile passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Startup,
    Blocked,
    Connect,
    Preprocess,
    Send,
    Compile,
    Receive,
    Done,
}

impl Phase {
    fn from_raw(n: u32) -> Option<Phase> {
        use Phase::*;
        [
            Startup, Blocked, Connect, Preprocess, Send, Compile, Receive, Done,
        ]
        .get(n as usize)
        .copied()
    }

    /// distcc's own name for it (`dcc_get_phase_name`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "Startup",
            Phase::Blocked => "Blocked",
            Phase::Connect => "Connect",
            Phase::Preprocess => "Preprocess",
            Phase::Send => "Send",
            Phase::Compile => "Compile",
            Phase::Receive => "Receive",
            Phase::Done => "Done",
        }
    }
}

/// One state record: what one distcc client is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The client's PID.
    pub pid: u32,
    /// The source file's base name ("" before distcc knows it).
    pub file: String,
    /// "localhost", or the worker's host as the hosts file names it.
    pub host: String,
    /// Which of that host's slots (distcc's lock number).
    pub slot: u32,
    pub phase: Phase,
}

/// A C string field: up to its first NUL (distcc always writes one).
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Parse one state file's bytes. `None` for anything but one whole
/// record: a file read while distcc truncates and rewrites it is short,
/// and a file of another distcc build (another size or magic) is not ours
/// to guess at.
pub fn parse(b: &[u8]) -> Option<Task> {
    if b.len() != SIZE {
        return None;
    }
    let word = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let int = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap_or_default());
    if word(0) != SIZE as u64 || word(8) != MAGIC {
        return None;
    }
    Some(Task {
        pid: u32::try_from(word(16)).ok()?,
        file: c_string(&b[24..152]),
        host: c_string(&b[152..280]),
        slot: int(280),
        phase: Phase::from_raw(int(284))?,
    })
}

/// The PID in a state file's name (`binstate_PID`).
pub fn pid_of(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"binstate_")?;
    crate::account::whole(digits)
}

/// A record as distcc writes it (for tests and the benchmark's fake
/// clients).
pub fn encode(t: &Task) -> Vec<u8> {
    let mut b = vec![0u8; SIZE];
    b[0..8].copy_from_slice(&(SIZE as u64).to_ne_bytes());
    b[8..16].copy_from_slice(&MAGIC.to_ne_bytes());
    b[16..24].copy_from_slice(&u64::from(t.pid).to_ne_bytes());
    let put = |b: &mut [u8], s: &str| {
        let n = s.len().min(127);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
    };
    put(&mut b[24..152], &t.file);
    put(&mut b[152..280], &t.host);
    b[280..284].copy_from_slice(&t.slot.to_ne_bytes());
    b[284..288].copy_from_slice(&(t.phase as u32).to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            pid: 4242,
            file: "hello.c".into(),
            host: "127.200.1.2".into(),
            slot: 3,
            phase: Phase::Compile,
        }
    }

    #[test]
    fn a_whole_record_reads_back() {
        assert_eq!(parse(&encode(&task())), Some(task()));
    }

    #[test]
    fn short_resized_or_foreign_records_are_refused() {
        let b = encode(&task());
        assert_eq!(parse(&b[..0]), None);
        assert_eq!(parse(&b[..200]), None);
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(parse(&longer), None);
        let mut magic = b.clone();
        magic[8] ^= 1;
        assert_eq!(parse(&magic), None);
        let mut size = b.clone();
        size[0] = 8;
        assert_eq!(parse(&size), None);
        let mut phase = b;
        phase[284] = 9;
        assert_eq!(parse(&phase), None);
    }

    #[test]
    fn names_give_their_pid() {
        assert_eq!(pid_of(b"binstate_123"), Some(123));
        assert_eq!(pid_of(b"binstate_"), None);
        assert_eq!(pid_of(b"binstate_12x"), None);
        assert_eq!(pid_of(b"other_12"), None);
    }
}
