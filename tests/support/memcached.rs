//! A real memcached for the tests: started on a loopback port, asked raw
//! text-protocol commands, killed (and its port freed) on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real memcached on 127.0.0.1, killed on drop.
pub struct Memcached {
    pub port: u16,
    child: Child,
}

impl Memcached {
    pub fn start(port: u16) -> Memcached {
        let child = Command::new("/usr/bin/memcached")
            .args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"])
            // Ignored unless run as root (memcached refuses root without it).
            .args(["-u", "nobody", "-t", "1", "-m", "16"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/memcached");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "memcached did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Memcached { port, child }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait until the port refuses connections.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a raw command, reads until a line equal to `last`.
    pub fn raw(&self, cmd: &[u8], last: &str) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(cmd).unwrap();
        let mut r = BufReader::new(s);
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert!(r.read_line(&mut l).unwrap() > 0, "memcached closed");
            let l = l.trim_end().to_string();
            let done = l == last || l.starts_with("SERVER_ERROR") || l.starts_with("CLIENT_ERROR");
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    pub fn stat(&self, name: &str) -> u64 {
        let prefix = format!("STAT {name} ");
        self.raw(b"stats\r\n", "END")
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
            .unwrap_or_else(|| panic!("no stat {name}"))
    }

    /// Waits (up to 5 s) until stat `name` reaches `at_least`. Decisions
    /// are written with `noreply`: a coprocess answers before memcached has
    /// stored its value, and another connection (another memcached thread)
    /// may be served first. A test that reads another coprocess's write
    /// waits for it here.
    pub fn wait_stat(&self, name: &str, at_least: u64) {
        let start = Instant::now();
        loop {
            let v = self.stat(name);
            if v >= at_least {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "memcached stat {name} is {v}, waited for {at_least}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every key memcached holds.
    pub fn keys(&self) -> Vec<String> {
        self.raw(b"lru_crawler metadump all\r\n", "END")
            .iter()
            .filter_map(|l| l.strip_prefix("key="))
            .map(|k| percent_decode(k.split(' ').next().unwrap()))
            .collect()
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        let mut cmd = format!("set {key} 0 60 {}\r\n", value.len()).into_bytes();
        cmd.extend_from_slice(value);
        cmd.extend_from_slice(b"\r\n");
        assert_eq!(self.raw(&cmd, "STORED").last().unwrap(), "STORED");
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let lines = self.raw(format!("get {key}\r\n").as_bytes(), "END");
        lines.get(1).filter(|_| lines.len() == 3).cloned()
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
