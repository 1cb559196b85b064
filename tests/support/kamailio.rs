//! A real Kamailio on loopback for the SIP prober tests: a generated minimal
//! kamailio.cfg that answers OPTIONS with a chosen status (200 or 503) on
//! UDP and TCP, run in the foreground in its own process group from a temp
//! dir, and killed (the whole group) on drop, even when a test panics.
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

impl Kamailio {
    /// Starts on a free port, answering OPTIONS with `status`.
    pub fn start(status: u16) -> Kamailio {
        Kamailio::start_on(super::free_port(), status)
    }

    /// Starts on `port` and waits until it answers (panics with its log if not).
    pub fn start_on(port: u16, status: u16) -> Kamailio {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pdns-ha-kamailio-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir).expect("create the kamailio temp dir");
        let cfg = dir.join("kamailio.cfg");
        fs::write(&cfg, config(port, status)).expect("write kamailio.cfg");
        let log = fs::File::create(dir.join("kamailio.log")).expect("create kamailio.log");
        let child = Command::new(KAMAILIO)
            .args([
                "-f",
                path(&cfg),
                "-DD",
                "-E",
                "-w",
                path(&dir),
                "-Y",
                path(&dir),
            ])
            .args(["-m", "16", "-M", "4"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn kamailio");
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
