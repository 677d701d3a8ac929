//! FAKE stats servers and job ports: only for what a real distccd cannot
//! be made to send (garbage, stalls, floods, huge values).

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// What a fake stats server does with each connection.
pub type Behaviour = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// FAKE: a stats server on 127.0.0.1 for replies that a real distccd
/// cannot be made to send (garbage, stalls, trickles, huge or truncated
/// replies, values Debian's 3.4 build never reports such as dcc_free_mem).
/// Each test that uses it says why. It stops when dropped.
pub struct FakeStats {
    pub port: u16,
    /// A job port that accepts and never answers, to pair with it.
    pub job_port: u16,
    _job: TcpListener,
    stop: Arc<AtomicBool>,
}

impl FakeStats {
    pub fn new(behaviour: impl Fn(TcpStream) + Send + Sync + 'static) -> FakeStats {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour: Behaviour = Arc::new(behaviour);
        let s = Arc::clone(&stop);
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let b = Arc::clone(&behaviour);
                        thread::spawn(move || b(conn));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let job = TcpListener::bind("127.0.0.1:0").unwrap();
        let job_port = job.local_addr().unwrap().port();
        FakeStats {
            port,
            job_port,
            _job: job,
            stop,
        }
    }

    /// The DISTCC_AUTO_HOSTS entry of this fake worker.
    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}:{}", self.job_port, self.port)
    }

    /// A server that sends `reply` and closes.
    pub fn replying(reply: impl Into<Vec<u8>>) -> FakeStats {
        let reply = reply.into();
        FakeStats::new(move |mut c| {
            let _ = c.write_all(&reply);
            let _ = c.shutdown(Shutdown::Both);
        })
    }
}

impl Drop for FakeStats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A stats reply shaped like distccd's, with the given fields.
pub fn stats_reply(fields: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\nContent-Type: text/plain\nConnection: close\n\nargv /distccd\n<distccstats>\ndcc_tcp_accept 0\n{fields}</distccstats>\n"
    )
}

/// Listeners on loopback that accept and never speak: FAKE job ports for
/// many workers (a real distccd listens on one port), each paired in
/// `entries` with the real stats port `stats`.
pub fn fake_job_ports(n: usize, stats: u16) -> (Vec<TcpListener>, String) {
    let jobs: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let entries: Vec<String> = jobs
        .iter()
        .map(|l| format!("127.0.0.1:{}:{stats}", l.local_addr().unwrap().port()))
        .collect();
    (jobs, entries.join(" "))
}
