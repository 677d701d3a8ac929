//! One link (a bridge in a namespace of its own) with a client and
//! workers that announce themselves: each worker a namespace with its own
//! mount and UTS namespaces, so that its D-Bus system bus, avahi-daemon
//! (whose pid file is under /run/avahi-daemon) and host name are its own,
//! and a real `distccd --zeroconf`. The client has no Avahi at all.

use super::*;

pub const LINK_NET: &str = "10.233.0";

pub struct Link {
    pub hub: Netns,
    pub client: Netns,
    hosts: usize,
}

impl Link {
    pub fn new() -> Link {
        let hub = Netns::new("hub");
        sh(&[
            "ip", "-n", &hub.name, "link", "add", "br0", "type", "bridge",
        ]);
        sh(&["ip", "-n", &hub.name, "link", "set", "br0", "up"]);
        let mut link = Link {
            client: Netns::new("zc"),
            hub,
            hosts: 0,
        };
        let client = link.client.name.clone();
        link.attach(&client, &format!("{LINK_NET}.1"));
        link
    }

    /// A veth from the bridge into namespace `ns`, with address `ip`/24.
    fn attach(&mut self, ns: &str, ip: &str) {
        self.hosts += 1;
        let (a, b) = (format!("zh{}", self.hosts), format!("zl{}", self.hosts));
        sh(&[
            "ip",
            "-n",
            &self.hub.name,
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.hub.name,
            "link",
            "set",
            &a,
            "master",
            "br0",
            "up",
        ]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            &b,
        ]);
        sh(&["ip", "-n", ns, "link", "set", &b, "up"]);
    }

    /// A namespace on the link at `LINK_NET.N`.
    pub fn host(&mut self, tag: &str) -> (Netns, String) {
        let ns = Netns::new(tag);
        let ip = format!("{LINK_NET}.{}", self.hosts + 1);
        let name = ns.name.clone();
        self.attach(&name, &ip);
        (ns, ip)
    }
}

/// How an announcing worker runs.
pub struct Announcing {
    pub jobs: u32,
    pub stats: bool,
    /// gcc 11's driver bound over gcc 12's: it announces cc_version=11.
    pub gcc11: bool,
}

/// A worker announcing itself on the link; its distccd's log is `log`.
pub struct AnnouncedWorker {
    pub ip: String,
    pub log: PathBuf,
    _daemon: Daemon,
    _dir: TempDir,
    _ns: Netns,
}

impl AnnouncedWorker {
    pub fn start(link: &mut Link, name: &str, how: Announcing) -> AnnouncedWorker {
        let (ns, ip) = link.host(name);
        let dir = TempDir::new("zw");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let log = dir.path().join("distccd.log");
        let gcc11 = if how.gcc11 {
            "mount --bind /usr/bin/x86_64-linux-gnu-gcc-11 /usr/bin/x86_64-linux-gnu-gcc-12\n"
        } else {
            ""
        };
        let stats = if how.stats {
            "--stats --stats-port 3633"
        } else {
            ""
        };
        let script = format!(
            "set -e\nhostname {name}\nmount -t tmpfs tmpfs /run/dbus\n\
             mkdir -p /run/avahi-daemon\nmount -t tmpfs tmpfs /run/avahi-daemon\n{gcc11}\
             dbus-daemon --system --nofork &\n\
             i=0; while [ ! -S /run/dbus/system_bus_socket ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
             avahi-daemon --no-chroot &\n\
             i=0; while ! avahi-daemon -c && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
             exec distccd --no-detach --daemon --zeroconf --listen {ip} --allow {LINK_NET}.0/24 \
             --port 3632 {stats} --jobs {} --log-file {}\n",
            how.jobs,
            log.display()
        );
        let mut c = ns.cmd("unshare");
        c.args([
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::null());
        let daemon = Daemon::spawn(c, "an announcing worker");
        AnnouncedWorker {
            ip,
            log,
            _daemon: daemon,
            _dir: dir,
            _ns: ns,
        }
    }

    /// Compiles its distccd logged as done.
    pub fn compiled(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("COMPILE_OK")
            .count()
    }
}
