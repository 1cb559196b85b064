//! A real PowerDNS (`pdns_server` 4.7 with the pipe backend) running
//! `pdns-ha pipe` as its coprocess, on a free loopback port, and `dig` to ask
//! it questions. See shared/pdns-pipe-abi.md for how PowerDNS behaves.
//!
//! Each [`Pdns`] has its own temporary directory (pdns.conf, control socket,
//! log) and is killed, with its coprocesses, when dropped, also when the test
//! panics (then the tail of its log is printed).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, TempDir};

/// Finds a program in `PATH` or the sbin directories (pdns_server is in
/// /usr/sbin, which a non-root `PATH` may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True if `pdns_server` and `dig` are installed. When they are not, says so
/// loudly (the caller then skips its test), or panics if
/// `PDNS_HA_REQUIRE_PDNS` is set.
pub fn tools_available() -> bool {
    let missing: Vec<&str> = ["pdns_server", "dig"]
        .into_iter()
        .filter(|p| find_program(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{} not installed: this test needs PowerDNS 4.7 with the pipe backend and dig \
         (apt-get install pdns-server pdns-backend-pipe bind9-dnsutils)",
        missing.join(" and ")
    );
    if std::env::var_os("PDNS_HA_REQUIRE_PDNS").is_some() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// The settings of the project's `pdns.conf.example` (the configuration the
/// README tells users to run), one `key=value` a line, with the values of
/// `set` in place of the example's (or added). The tests run PowerDNS with
/// exactly these settings, plus [`PdnsOpts::extra`].
pub fn conf_from_example(set: &[(&str, String)]) -> Vec<String> {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pdns.conf.example"))
            .expect("read pdns.conf.example");
    let mut lines: Vec<String> = Vec::new();
    for l in example.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let key = l.split_once('=').map_or(l, |(k, _)| k);
        match set.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => lines.push(format!("{k}={v}")),
            None => lines.push(l.to_string()),
        }
    }
    for (k, v) in set {
        if !lines.iter().any(|l| l.starts_with(&format!("{k}="))) {
            lines.push(format!("{k}={v}"));
        }
    }
    lines
}

/// How to run PowerDNS.
#[derive(Clone, Debug)]
pub struct PdnsOpts {
    /// `pipe-abi-version` (1 to 5).
    pub abi: u8,
    /// `pipe-timeout`, milliseconds.
    pub pipe_timeout_ms: u32,
    /// More pdns.conf lines (`key=value`) after those of
    /// `pdns.conf.example` (`allow-axfr-ips=127.0.0.0/8`, `cache-ttl=1`, ...;
    /// PowerDNS takes the last value of a key).
    pub extra: Vec<String>,
    /// More arguments for `pdns-ha pipe` (`--memcached HOST:PORT`); no spaces
    /// inside one (pdns splits `pipe-command` on spaces).
    pub pipe_args: Vec<String>,
    /// How long PowerDNS may take to answer its first question.
    pub ready_timeout: Duration,
}

impl Default for PdnsOpts {
    fn default() -> Self {
        PdnsOpts {
            abi: 5,
            pipe_timeout_ms: 2000,
            extra: Vec::new(),
            pipe_args: Vec::new(),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

impl PdnsOpts {
    pub fn abi(abi: u8) -> PdnsOpts {
        PdnsOpts {
            abi,
            ..PdnsOpts::default()
        }
    }

    /// Adds a pdns.conf line.
    pub fn with(mut self, line: &str) -> PdnsOpts {
        self.extra.push(line.to_string());
        self
    }
}

/// A running PowerDNS.
pub struct Pdns {
    child: Child,
    /// The UDP and TCP port on 127.0.0.1.
    pub port: u16,
    log_path: PathBuf,
    dir: TempDir,
}

/// The name asked to see whether PowerDNS answers: outside every test zone,
/// so that no negative answer for a test zone gets cached by PowerDNS.
const READY_NAME: &str = "pdns-ha-ready.invalid";

enum StartError {
    /// The port was taken between choosing and binding it: try another.
    PortTaken(String),
    Failed(String),
}

impl Pdns {
    /// Starts PowerDNS on a free port with `pdns-ha pipe --db DB` as its
    /// coprocess (`db` need not exist yet) and waits until it answers.
    /// Panics (with its log) if it does not start.
    pub fn start(db: &Path, opts: PdnsOpts) -> Pdns {
        let db = std::path::absolute(db).expect("absolute database path");
        let mut last = String::new();
        for _ in 0..3 {
            match Pdns::try_start(&db, &opts) {
                Ok(p) => return p,
                Err(StartError::PortTaken(log)) => last = log,
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("PowerDNS could not bind a port three times; last log:\n{last}");
    }

    fn try_start(db: &Path, opts: &PdnsOpts) -> Result<Pdns, StartError> {
        let dir = TempDir::new("pdns");
        let port = super::free_port();
        let mut pipe_command = format!("{BIN} pipe --db {}", db.display());
        for a in &opts.pipe_args {
            pipe_command.push(' ');
            pipe_command.push_str(a);
        }
        assert!(
            !BIN.contains(' ') && !db.to_string_lossy().contains(' '),
            "pdns splits pipe-command on spaces: {pipe_command}"
        );
        let conf = conf_from_example(&[
            ("pipe-command", pipe_command.clone()),
            ("pipe-standby-command", pipe_command),
            ("pipe-abi-version", opts.abi.to_string()),
            ("pipe-standby-abi-version", opts.abi.to_string()),
            ("pipe-timeout", opts.pipe_timeout_ms.to_string()),
            ("pipe-standby-timeout", opts.pipe_timeout_ms.to_string()),
            ("local-address", "127.0.0.1".to_string()),
            ("local-port", port.to_string()),
            ("socket-dir", dir.path().display().to_string()),
        ])
        .into_iter()
        .chain(opts.extra.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
            + "\n";
        std::fs::write(dir.path().join("pdns.conf"), &conf).expect("write pdns.conf");
        let log_path = dir.path().join("pdns.log");
        let log = std::fs::File::create(&log_path).expect("create the pdns log");
        let server = find_program("pdns_server").expect("pdns_server is installed");
        let mut cmd = Command::new(server);
        cmd.arg(format!("--config-dir={}", dir.path().display()))
            .args(["--daemon=no", "--guardian=no", "--disable-syslog"])
            .env_remove("PDNS_HA_DB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        // Its own process group, so that Drop kills the coprocesses too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("cannot start pdns_server: {e}")))?;
        let mut p = Pdns {
            child,
            port,
            log_path,
            dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = p.log();
                return Err(
                    if log.contains("Address already in use") || log.contains("Unable to bind") {
                        StartError::PortTaken(log)
                    } else {
                        StartError::Failed(format!(
                            "pdns_server exited at startup ({status}); pdns.conf:\n{conf}\nlog:\n{log}"
                        ))
                    },
                );
            }
            let d = p.dig(&["+time=1", READY_NAME, "SOA"]);
            if !d.status.is_empty() {
                return Ok(p);
            }
            if start.elapsed() > opts.ready_timeout {
                return Err(StartError::Failed(format!(
                    "pdns_server does not answer on 127.0.0.1:{port} after {:?}; pdns.conf:\n{conf}\nlog:\n{}",
                    opts.ready_timeout,
                    p.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of pdns_server (the parent of its coprocesses).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pids of the `pdns-ha pipe` coprocesses it runs now.
    pub fn coprocesses(&self) -> Vec<u32> {
        super::processes_named("pdns-ha")
            .into_iter()
            .filter(|&(_, ppid, state)| ppid == self.pid() && state != 'Z')
            .map(|(pid, _, _)| pid)
            .collect()
    }

    /// The directory of pdns.conf, its control socket and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What PowerDNS and the coprocesses wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The questions PowerDNS sent to its coprocesses so far, in order, as
    /// it logs them with `query-logging=yes` (add it to
    /// [`PdnsOpts::extra`]): `Q\tNAME\tIN\tTYPE\tID\tREMOTE...`, every
    /// coprocess (standbys included) in one list. A question is logged
    /// before it is sent, so a question asked for a DNS query is in the list
    /// once `dig` has its answer.
    pub fn questions(&self) -> Vec<String> {
        const MARK: &str = "Query: 'Q\t";
        self.log()
            .lines()
            .filter_map(|l| {
                let at = l.find(MARK)?;
                let q = &l[at + "Query: '".len()..];
                Some(q.strip_suffix('\'').unwrap_or(q).to_string())
            })
            .collect()
    }

    /// Panics (with the log) if PowerDNS logged trouble with the backend:
    /// a coprocess that exited or was killed, a SERVFAIL, a malformed line.
    #[track_caller]
    pub fn assert_no_backend_trouble(&self) {
        let log = self.log();
        let trouble = log.lines().find(|l| {
            let lower = l.to_ascii_lowercase();
            [
                "coprocess",
                "servfail",
                "backend reported",
                "malformed line",
                "[error",
            ]
            .iter()
            .any(|t| lower.contains(t))
        });
        if let Some(l) = trouble {
            panic!("PowerDNS logged backend trouble: {l}\nlog:\n{log}");
        }
    }

    /// Runs `dig @127.0.0.1 -p PORT +norec +time=2 +tries=1 ARGS` and parses
    /// its output. A later `+time=N` in `args` wins.
    pub fn dig(&self, args: &[&str]) -> Dig {
        let dig = find_program("dig").expect("dig is installed");
        let out = Command::new(dig)
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string()])
            .args(["+norec", "+time=2", "+tries=1"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run dig");
        let mut d = Dig::parse(&String::from_utf8_lossy(&out.stdout));
        if d.status.is_empty() && !out.stderr.is_empty() {
            d.raw.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        d
    }
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The whole group: pdns_server and every `pdns-ha pipe` it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "---- PowerDNS log (port {}, last {} lines) ----\n{}\n---- end of PowerDNS log ----",
                self.port,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// One resource record as dig prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// As printed, with the trailing dot.
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    /// The rest of the line (names in it end with a dot).
    pub data: String,
}

/// An SRV record's data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Without the trailing dot.
    pub target: String,
}

impl Srv {
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.trim_end_matches('.').to_string(),
        }
    }

    /// Parses `PRIORITY WEIGHT PORT TARGET`.
    pub fn parse(s: &str) -> Option<Srv> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 4 {
            return None;
        }
        Some(Srv::new(
            f[0].parse().ok()?,
            f[1].parse().ok()?,
            f[2].parse().ok()?,
            f[3],
        ))
    }
}

impl fmt::Display for Srv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.priority, self.weight, self.port, self.target
        )
    }
}

/// The EDNS Client Subnet option of a response: `address/source/scope`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ecs {
    pub address: String,
    pub source: u8,
    pub scope: u8,
}

/// dig's answer, parsed.
#[derive(Clone, Debug, Default)]
pub struct Dig {
    /// NOERROR, NXDOMAIN, REFUSED, SERVFAIL...; empty if no response came.
    pub status: String,
    /// Header flags (`qr`, `aa`, ...).
    pub flags: Vec<String>,
    /// The answer section; every record of an AXFR.
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    pub ecs: Option<Ecs>,
    /// dig's whole output, for failure messages.
    pub raw: String,
}

impl Dig {
    pub fn parse(out: &str) -> Dig {
        #[derive(PartialEq)]
        enum Section {
            Answer,
            Authority,
            Additional,
            Other,
        }
        let mut d = Dig {
            raw: out.to_string(),
            ..Dig::default()
        };
        // An AXFR has no section headers: its records count as answers.
        let mut section = Section::Answer;
        for line in out.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix(";; ->>HEADER<<-") {
                if let Some(s) = rest.split("status: ").nth(1) {
                    d.status = s.split(',').next().unwrap_or("").trim().to_string();
                }
            } else if let Some(rest) = t.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or("");
                d.flags = flags.split_whitespace().map(str::to_string).collect();
            } else if let Some(rest) = t.strip_prefix("; CLIENT-SUBNET:") {
                let parts: Vec<&str> = rest.trim().split('/').collect();
                if parts.len() == 3 {
                    d.ecs = Some(Ecs {
                        address: parts[0].to_string(),
                        source: parts[1].parse().unwrap_or(0),
                        scope: parts[2].parse().unwrap_or(0),
                    });
                }
            } else if t.starts_with(";; ANSWER SECTION") {
                section = Section::Answer;
            } else if t.starts_with(";; AUTHORITY SECTION") {
                section = Section::Authority;
            } else if t.starts_with(";; ADDITIONAL SECTION") {
                section = Section::Additional;
            } else if t.starts_with(";; ") && t.ends_with("SECTION:") {
                section = Section::Other;
            } else if t.is_empty() || t.starts_with(';') {
                continue;
            } else if let Some(rr) = parse_rr(t) {
                match section {
                    Section::Answer => d.answer.push(rr),
                    Section::Authority => d.authority.push(rr),
                    Section::Additional => d.additional.push(rr),
                    Section::Other => {}
                }
            }
        }
        d
    }

    /// The answer records of type `rtype`.
    pub fn records(&self, rtype: &str) -> Vec<&Rr> {
        self.answer
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .collect()
    }

    /// The data of the answer records of type `rtype`, sorted (pdns shuffles
    /// records over UDP: their order means nothing).
    pub fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self.records(rtype).iter().map(|r| r.data.clone()).collect();
        v.sort();
        v
    }

    /// The SRV answers, sorted by priority, then weight (highest first is not
    /// implied), port and target.
    pub fn srvs(&self) -> Vec<Srv> {
        let mut v: Vec<Srv> = self
            .records("SRV")
            .iter()
            .filter_map(|r| Srv::parse(&r.data))
            .collect();
        v.sort();
        v
    }

    /// The SRV targets by priority: the node host names, best first (equal
    /// priorities by name).
    pub fn srv_targets(&self) -> Vec<String> {
        self.srvs().into_iter().map(|s| s.target).collect()
    }

    /// The SRV targets' node names (first label) grouped by priority, best
    /// first; names sorted within a group.
    pub fn srv_tiers(&self) -> Vec<Vec<String>> {
        let mut out: Vec<(u16, Vec<String>)> = Vec::new();
        for s in self.srvs() {
            let node = s.target.split('.').next().unwrap_or("").to_string();
            match out.last_mut() {
                Some((p, v)) if *p == s.priority => v.push(node),
                _ => out.push((s.priority, vec![node])),
            }
        }
        out.into_iter()
            .map(|(_, mut v)| {
                v.sort();
                v
            })
            .collect()
    }

    /// The ECS scope of the response, if it carried the option.
    pub fn scope(&self) -> Option<u8> {
        self.ecs.as_ref().map(|e| e.scope)
    }
}

impl fmt::Display for Dig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `name ttl class type data...`
fn parse_rr(line: &str) -> Option<Rr> {
    let mut rest = line;
    let mut fields = Vec::with_capacity(4);
    for _ in 0..4 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let ttl = fields[1].parse().ok()?;
    Some(Rr {
        name: fields[0].to_string(),
        ttl,
        rtype: fields[3].to_string(),
        data: rest.trim().to_string(),
    })
}
