//! Shared by the integration tests: temporary directories, running the
//! `pdns-ha` binary against a test database, polling with a deadline, and a
//! real PowerDNS ([`pdns`]). Each test binary uses only part of it.
#![allow(dead_code)]

pub mod chromium;
pub mod collect;
pub mod coproc;
pub mod dnswire;
pub mod fake_esl;
pub mod kamailio;
pub mod lossy_udp;
pub mod memcached;
pub mod pdns;
pub mod sip_responder;
pub mod test_ca;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[allow(unused_imports)] // each test binary uses some
pub use coproc::Coproc;
#[allow(unused_imports)]
pub use pdns::{Dig, Ecs, Pdns, PdnsOpts, Rr, Srv};

/// A loopback port free for both UDP and TCP (PowerDNS, Kamailio and
/// memcached listen on both), for a server a test starts.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// The site file `tests/fixtures/NAME.toml`: one file per topology the
/// tests use, shared by the test binaries that use it.
pub fn fixture(name: &str) -> String {
    fixture_with(name, &[])
}

/// [`fixture`] with each `${KEY}` replaced by its value (ports, addresses
/// and settings known only when the test runs). A key the file does not
/// have, or a `${` left over, is a mistake in the test: it panics.
pub fn fixture_with(name: &str, values: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.toml"));
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {}: {e}", path.display()));
    for (key, value) in values {
        let placeholder = format!("${{{key}}}");
        assert!(
            text.contains(&placeholder),
            "the fixture {name} has no {placeholder}"
        );
        text = text.replace(&placeholder, value);
    }
    if let Some(at) = text.find("${") {
        let rest = &text[at..];
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        panic!("the fixture {name} needs a value for {}", &rest[..end]);
    }
    text
}

/// The binary under test, built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_pdns-ha");

/// A directory under the system's temporary directory, removed on drop
/// (kept when `PDNS_HA_TEST_KEEP` is set, for debugging).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "pdns-ha-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let path = path.canonicalize().expect("canonical temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("PDNS_HA_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs `pdns-ha ARGS --db DB`.
pub fn pdns_ha(db: &Path, args: &[&str]) -> Output {
    pdns_ha_stdin(db, args, "")
}

/// Runs `pdns-ha ARGS --db DB` with `input` on its standard input.
pub fn pdns_ha_stdin(db: &Path, args: &[&str], input: &str) -> Output {
    pdns_ha_stdin_bytes(db, args, input.as_bytes())
}

/// Runs `pdns-ha ARGS --db DB` with `input` (any bytes) on its standard input.
pub fn pdns_ha_stdin_bytes(db: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("PDNS_HA_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A thread, so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for pdns-ha");
    let _ = writer.join();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it exited with status 0.
#[track_caller]
pub fn assert_ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// A test database (not created until `apply`) in its own temporary
/// directory, with the site file written next to it.
pub struct Db {
    pub path: PathBuf,
    pub dir: TempDir,
}

impl Db {
    pub fn new(tag: &str) -> Db {
        let dir = TempDir::new(tag);
        Db {
            path: dir.path().join("pdns-ha.sqlite"),
            dir,
        }
    }

    /// Where [`Db::apply`] writes the site file.
    pub fn site_path(&self) -> PathBuf {
        self.dir.path().join("site.toml")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        pdns_ha(&self.path, args)
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        pdns_ha_stdin(&self.path, args, input)
    }

    /// Writes `site` to [`Db::site_path`] and runs `apply` on it.
    pub fn apply(&self, site: &str) -> Output {
        let p = self.site_path();
        std::fs::write(&p, site).expect("write the site file");
        self.run(&["apply", p.to_str().expect("utf-8 path")])
    }

    #[track_caller]
    pub fn apply_ok(&self, site: &str) {
        let o = self.apply(site);
        assert_ok("pdns-ha apply", &o);
    }

    /// `pdns-ha ingest` with `lines` on standard input.
    pub fn ingest(&self, lines: &str) -> Output {
        self.run_stdin(&["ingest"], lines)
    }

    #[track_caller]
    pub fn ingest_ok(&self, lines: &str) {
        let o = self.ingest(lines);
        assert_ok("pdns-ha ingest", &o);
    }

    /// Every topology row (kind, name, definition) and the generation, as
    /// text, for before/after comparisons.
    pub fn topology_rows(&self) -> Vec<String> {
        let c = rusqlite::Connection::open(&self.path).expect("open the test database");
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut st = c
            .prepare("SELECT kind, name, def FROM topology ORDER BY kind, name, def")
            .unwrap();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let g: i64 = c
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })
            .unwrap();
        rows.push(format!("generation {g}"));
        rows
    }

    /// `status --json`, parsed.
    #[track_caller]
    pub fn status_json(&self) -> serde_json::Value {
        let o = self.run(&["status", "--json"]);
        assert_ok("pdns-ha status --json", &o);
        serde_json::from_slice(&o.stdout).expect("status --json is JSON")
    }
}

/// Calls `f` until it returns `Ok`, every `step`, for at most `timeout`;
/// panics with `what` and the last error after that.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let step = Duration::from_millis(100);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() >= timeout => {
                panic!("{what}: not true after {:?}; last: {e}", start.elapsed())
            }
            Err(_) => std::thread::sleep(step),
        }
    }
}

/// Returns early from a test (after saying so loudly) when `pdns_server` or
/// `dig` is not installed. With `PDNS_HA_REQUIRE_PDNS` set, fails instead.
#[macro_export]
macro_rules! require_pdns {
    () => {
        if !$crate::support::pdns::tools_available() {
            return;
        }
    };
}

/// `(pid, parent pid, state)` of every process named `comm`.
pub fn processes_named(comm: &str) -> Vec<(u32, u32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != comm {
            continue;
        }
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        out.push((
            stat[..open].trim().parse().unwrap(),
            rest[1].parse().unwrap(),
            rest[0].chars().next().unwrap(),
        ));
    }
    out
}

/// Makes `dir` read-only (`on`) or writable again: no file can be created
/// or removed in it, as when its permissions are wrong; the files in it
/// stay as they are. With the immutable attribute when running as root
/// (root ignores permissions), with permissions otherwise. (Making the
/// files immutable too kills any process that has SQLite's `-shm` file
/// mapped with SIGBUS at its next write there: the kernel refuses writes
/// through a mapping of an immutable file.) False if that cannot be done
/// here (no `chattr`, a file system without the attribute, no right).
pub fn set_read_only(dir: &Path, on: bool) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let status = if root {
        Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(dir)
            .stderr(Stdio::null())
            .status()
    } else {
        Command::new("chmod")
            .arg(if on { "a-w" } else { "u+w" })
            .arg(dir)
            .status()
    };
    status.is_ok_and(|s| s.success())
}
