//! A real Kamailio on loopback for the SIP prober tests: a generated minimal
//! kamailio.cfg that answers OPTIONS with a chosen status (200 or 503) on
//! UDP and TCP, run in the foreground in its own process group from a temp
//! dir, and killed (the whole group) on drop, even when a test panics.
//! [`Kamailio::start_tls`] runs one with its TLS module (`tls.so`, Debian
//! `kamailio-tls-modules`): one TLS listener per certificate, and a plain
//! TCP one.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pdns_ha::collector::ProbeOutcome;
use pdns_ha::collector::sip::{self, SipTarget};

pub const KAMAILIO: &str = "/usr/sbin/kamailio";

/// True when the binary is installed; tests skip (saying so) otherwise.
pub fn available() -> bool {
    Path::new(KAMAILIO).exists()
}

pub struct Kamailio {
    pub port: u16,
    pub status: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// The kamailio.cfg the tests run: stateless, OPTIONS -> `status`.
pub fn config(port: u16, status: u16) -> String {
    let reason = if status == 503 {
        "Service Unavailable"
    } else {
        "OK"
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
loadmodule "sl.so"
request_route {{
    if (method=="OPTIONS") {{
        sl_send_reply("{status}", "{reason}");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"#
    )
}

/// One TLS listener of [`Kamailio::start_tls`]: its port and the
/// certificate and key it presents.
pub struct TlsListen {
    pub port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The kamailio.cfg and tls.cfg of [`Kamailio::start_tls`]: OPTIONS -> 200
/// on every listener.
pub fn tls_config(dir: &Path, listens: &[TlsListen], tcp_port: u16) -> (String, String) {
    let mut cfg = String::from(
        "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=1\ntcp_children=2\nauto_aliases=no\ndns=no\nrev_dns=no\nenable_tls=yes\n",
    );
    cfg.push_str(&format!("listen=tcp:127.0.0.1:{tcp_port}\n"));
    let mut tls = String::new();
    for (i, l) in listens.iter().enumerate() {
        cfg.push_str(&format!("listen=tls:127.0.0.1:{}\n", l.port));
        let profiles = if i == 0 {
            vec!["default".to_string(), format!("127.0.0.1:{}", l.port)]
        } else {
            vec![format!("127.0.0.1:{}", l.port)]
        };
        for p in profiles {
            tls.push_str(&format!(
                "[server:{p}]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\ncertificate = {}\nprivate_key = {}\n\n",
                path(&l.cert),
                path(&l.key)
            ));
        }
    }
    tls.push_str("[client:default]\nverify_certificate = no\nrequire_certificate = no\n");
    cfg.push_str(&format!(
        r#"loadmodule "tls.so"
modparam("tls", "config", "{}")
loadmodule "sl.so"
request_route {{
    if (method=="OPTIONS") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"#,
        path(&dir.join("tls.cfg"))
    ));
    (cfg, tls)
}

/// True when Kamailio's TLS module (`/usr/lib/ARCH/kamailio/modules/tls.so`)
/// is installed too.
pub fn tls_available() -> bool {
    available()
        && fs::read_dir("/usr/lib").is_ok_and(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("kamailio/modules/tls.so").exists())
        })
}

fn new_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pdns-ha-kamailio-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).expect("create the kamailio temp dir");
    dir
}

/// Runs kamailio.cfg of `dir` with `shm` and `pkg` MB of memory (TLS needs
/// more).
fn spawn(dir: &Path, shm: &str, pkg: &str) -> Child {
    let cfg = dir.join("kamailio.cfg");
    let log = fs::File::create(dir.join("kamailio.log")).expect("create kamailio.log");
    Command::new(KAMAILIO)
        .args([
            "-f",
            path(&cfg),
            "-DD",
            "-E",
            "-w",
            path(dir),
            "-Y",
            path(dir),
        ])
        .args(["-m", shm, "-M", pkg])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("spawn kamailio")
}

impl Kamailio {
    /// Starts with TLS listeners (OPTIONS -> 200) and a plain TCP one on
    /// `tcp_port`; `ready` says when it answers (panics with its log if
    /// not within 10 s).
    pub fn start_tls(listens: &[TlsListen], tcp_port: u16, ready: impl Fn() -> bool) -> Kamailio {
        let dir = new_dir();
        let (cfg, tls) = tls_config(&dir, listens, tcp_port);
        fs::write(dir.join("kamailio.cfg"), cfg).expect("write kamailio.cfg");
        fs::write(dir.join("tls.cfg"), tls).expect("write tls.cfg");
        let child = spawn(&dir, "32", "8");
        let mut k = Kamailio {
            port: tcp_port,
            status: 200,
            dir,
            child: Some(child),
        };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Some(st) = k.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("kamailio exited ({st}) at start:\n{}", k.log());
            }
            if ready() {
                return k;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kamailio did not answer over TLS within 10 s:\n{}", k.log());
    }

    /// Starts on a free port, answering OPTIONS with `status`.
    pub fn start(status: u16) -> Kamailio {
        Kamailio::start_on(super::free_port(), status)
    }

    /// Starts on `port` and waits until it answers (panics with its log if not).
    pub fn start_on(port: u16, status: u16) -> Kamailio {
        let dir = new_dir();
        fs::write(dir.join("kamailio.cfg"), config(port, status)).expect("write kamailio.cfg");
        let child = spawn(&dir, "16", "4");
        let mut k = Kamailio {
            port,
            status,
            dir,
            child: Some(child),
        };
        k.wait_ready();
        k
    }

    pub fn udp(&self) -> SipTarget {
        format!("udp:127.0.0.1:{}", self.port)
            .parse()
            .expect("udp target")
    }

    pub fn tcp(&self) -> SipTarget {
        format!("tcp:127.0.0.1:{}", self.port)
            .parse()
            .expect("tcp target")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + Duration::from_secs(10);
        let (udp, tcp) = (self.udp(), self.tcp());
        while Instant::now() < end {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(st) = exited {
                panic!("kamailio exited ({st}) at start:\n{}", self.log());
            }
            let ready = |t: &SipTarget| {
                !matches!(
                    sip::probe(t, Duration::from_millis(200)),
                    ProbeOutcome::Failed(_)
                )
            };
            if ready(&udp) && ready(&tcp) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kamailio did not answer on port {} within 10 s:\n{}",
            self.port,
            self.log()
        );
    }

    /// Kills the whole process group and waits until the port is free again.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        signal_group("-TERM", &group);
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (children of a stuck main process).
        signal_group("-KILL", &group);
        let _ = child.wait();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end
            && (UdpSocket::bind(("127.0.0.1", self.port)).is_err()
                || TcpListener::bind(("127.0.0.1", self.port)).is_err())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal_group(signal: &str, group: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
