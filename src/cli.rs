//! The command line: argument parsing and one function per subcommand. Each
//! handler is thin; the work is in the modules it calls.

use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::answer::Engine;
use crate::metrics::{self, Metric};
use crate::net::Prefix;
use crate::site;
use crate::store::{self, Store};

#[derive(Parser)]
#[command(
    name = "pdns-ha",
    version,
    about = "PowerDNS pipe backend that answers SIP lookups with the best VoIP servers for each client"
)]
pub struct Cli {
    /// The SQLite database (default: $PDNS_HA_DB).
    #[arg(long, global = true, env = "PDNS_HA_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The coprocess PowerDNS runs (pipe-command); speaks pipe ABI 1 to 5.
    Pipe {
        /// memcached servers shared by every coprocess: HOST:PORT[,HOST:PORT...]
        #[arg(long, value_name = "HOST:PORT[,...]")]
        memcached: Option<String>,
        /// Bound of one memcached operation (connect, send, answer), ms.
        #[arg(long, default_value_t = 3, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=1000))]
        memcached_timeout_ms: u64,
        /// After a memcached error, the server is not asked for this long, ms.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        memcached_backoff_ms: u64,
    },
    /// Creates or migrates the database and makes its topology equal to SITE.
    Apply {
        site: PathBuf,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Reads metric lines from FILE (or stdin) and stores them.
    Ingest {
        file: Option<PathBuf>,
        /// How long to wait for another writer's lock before giving up (ms).
        #[arg(long, default_value_t = 10_000, value_name = "MS")]
        busy_timeout_ms: u64,
    },
    /// The collector: FreeSWITCH event sockets and SIP OPTIONS probes.
    Collect,
    /// Prints the answer PowerDNS would get for CLIENT, and why.
    Explain {
        qname: String,
        #[arg(default_value = "ANY")]
        qtype: String,
        /// The client: IP or IP/LEN (as an ECS subnet).
        #[arg(long, value_name = "IP[/LEN]")]
        client: String,
        #[arg(long)]
        json: bool,
    },
    /// Nodes with health, load, latency coverage; seen client networks.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
        /// Same as --format prometheus (for node_exporter's textfile collector).
        #[arg(long)]
        prometheus: bool,
    },
    /// The log of state changes: health changes with their reason, drains,
    /// `apply`, collector start and stop (the newest 10,000 are kept).
    Log {
        /// Only changes in the last DURATION (90s, 15m, 2h, 7d).
        #[arg(long, value_name = "DURATION", value_parser = crate::clock::parse_duration)]
        since: Option<i64>,
        /// Only the changes of this node.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// At most this many, the newest.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Operator override: drain or undrain a node (effective at the next query).
    Node {
        #[arg(value_enum)]
        action: NodeAction,
        node: String,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Prometheus,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NodeAction {
    Drain,
    Undrain,
}

/// Runs the command; the exit status is 0 on success.
pub fn run(cli: Cli) -> Result<i32> {
    let db = cli
        .db
        .context("no database: give --db PATH or set PDNS_HA_DB")?;
    match cli.command {
        Command::Pipe {
            memcached,
            memcached_timeout_ms,
            memcached_backoff_ms,
        } => pipe(
            &db,
            memcached.as_deref(),
            crate::cache::memcached::Options {
                timeout: Duration::from_millis(memcached_timeout_ms),
                backoff: Duration::from_millis(memcached_backoff_ms),
            },
        ),
        Command::Apply { site, dry_run } => apply(&db, &site, dry_run),
        Command::Ingest {
            file,
            busy_timeout_ms,
        } => ingest(&db, file.as_deref(), Duration::from_millis(busy_timeout_ms)),
        Command::Collect => crate::collect::run(&db),
        Command::Explain {
            qname,
            qtype,
            client,
            json,
        } => explain(&db, &qname, &qtype, &client, json),
        Command::Status {
            format,
            json,
            prometheus,
        } => {
            let f = if json {
                Format::Json
            } else if prometheus {
                Format::Prometheus
            } else {
                format
            };
            status(&db, f)
        }
        Command::Log {
            since,
            node,
            limit,
            json,
        } => log(&db, since, node.as_deref(), limit, json),
        Command::Node { action, node } => drain(&db, &node, matches!(action, NodeAction::Drain)),
    }
}

fn pipe(db: &Path, memcached: Option<&str>, opts: crate::cache::memcached::Options) -> Result<i32> {
    let mut engine = Engine::new(db);
    if let Some(servers) = memcached {
        // Never connects here: the pipe starts with memcached down.
        engine.shared = Some(crate::cache::memcached::connect_with(servers, opts)?);
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    crate::pipe::serve(
        &mut engine,
        &mut stdin.lock(),
        &mut stdout.lock(),
        &mut crate::report::command,
    )?;
    Ok(0)
}

fn apply(db: &Path, site_path: &Path, dry_run: bool) -> Result<i32> {
    let bytes = std::fs::read(site_path)
        .with_context(|| format!("cannot read the site file {}", site_path.display()))?;
    let site = match site::parse_bytes(&site_path.display().to_string(), &bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("nothing was changed");
            return Ok(1);
        }
    };
    for w in site::advice(&site) {
        eprintln!("warning: {w}");
    }
    for n in &site.nodes {
        if let Some(f) = &n.esl_password_file
            && std::fs::metadata(f.path()).is_err()
        {
            eprintln!(
                "warning: node {}: esl_password_file {f} is not readable here (the collector reads it)",
                n.name
            );
        }
        // Only warned about: the collector may run on another host.
        if let Some(ca) = &n.sip_probe_ca
            && let Err(e) = crate::collector::tls::client_config(Some(ca))
        {
            eprintln!(
                "warning: node {}: {e} here (the collector loads it; its TLS probe fails until it can)",
                n.name
            );
        }
    }
    let changes = if dry_run {
        let existing = if db.exists() {
            Some(Store::open_existing(db, Duration::from_secs(5))?)
        } else {
            None
        };
        store::diff_site(existing.as_ref(), &site)?
    } else {
        let mut s = Store::open_or_create(db)?;
        store::apply_site(&mut s, &site)?
    };
    for c in &changes {
        println!("{c}");
    }
    match (changes.len(), dry_run) {
        (0, _) => println!(
            "no change: {} already matches {}",
            db.display(),
            site_path.display()
        ),
        (n, true) => println!(
            "dry run: {n} change(s) would be applied to {}; nothing written",
            db.display()
        ),
        (n, false) => println!("{n} change(s) applied to {}", db.display()),
    }
    Ok(0)
}

/// Lines are stored in batches: at most this many per transaction...
const INGEST_BATCH: usize = 5000;
/// ... and a line waits at most this long before its batch is written.
const INGEST_LINGER: Duration = Duration::from_millis(500);
/// The longest metric line kept: a real one is under 200 bytes. The rest of
/// a longer line is read and dropped, and the line reported.
const INGEST_MAX_LINE: usize = 4096;

/// One line as read: its bytes (none if it was longer than
/// `INGEST_MAX_LINE`) and its full length.
struct RawLine {
    bytes: Vec<u8>,
    len: usize,
}

/// Checks one line read by `ingest`: a metric of a known node, fresh enough
/// to count, or the reason it is refused.
fn ingest_line(
    raw: &RawLine,
    now: i64,
    policy: &site::PolicyConfig,
) -> Result<Option<Metric>, String> {
    if raw.len > INGEST_MAX_LINE {
        return Err(format!(
            "the line is {} bytes long, more than {INGEST_MAX_LINE}: not a metric line",
            raw.len
        ));
    }
    let line = std::str::from_utf8(&raw.bytes).map_err(|e| {
        format!(
            "the line is not UTF-8 (byte 0x{:02x} at column {}): not a metric line",
            raw.bytes[e.valid_up_to()],
            e.valid_up_to() + 1
        )
    })?;
    let Some(m) = metrics::parse_line(line, now)? else {
        return Ok(None);
    };
    match policy.too_old(&m, now) {
        Some(why) => Err(why),
        None => Ok(Some(m)),
    }
}

fn ingest(db: &Path, file: Option<&Path>, busy: Duration) -> Result<i32> {
    let mut store = Store::open_existing(db, busy)?;
    let source = file.map_or("stdin".to_string(), |f| f.display().to_string());
    let input: Box<dyn Read + Send> = match file {
        Some(f) => Box::new(
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    // A reader thread, so that a batch is written after INGEST_LINGER even
    // when the next line is slow to come (an agent piping into ingest).
    // Lines are read as bytes, with a bound: a line that is not UTF-8 or
    // too long is one bad line, and reading goes on after it.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<RawLine>>(INGEST_BATCH);
    std::thread::spawn(move || {
        let mut input = BufReader::new(input);
        let mut reader = crate::text::LineReader::new(INGEST_MAX_LINE);
        loop {
            let line = match reader.read(&mut input) {
                Ok(None) => break,
                Ok(Some(crate::text::Line::Text(t))) => Ok(RawLine {
                    bytes: t.to_vec(),
                    len: t.len(),
                }),
                Ok(Some(crate::text::Line::TooLong(len))) => Ok(RawLine {
                    bytes: Vec::new(),
                    len,
                }),
                Err(e) => Err(e),
            };
            let stop = line.is_err();
            if tx.send(line).is_err() || stop {
                break;
            }
        }
    });
    let mut nodes = store.node_ids()?;
    let mut policy = store.policy()?;
    let (mut lineno, mut bad, mut stored) = (0usize, 0usize, 0usize);
    let mut batch: Vec<Metric> = Vec::new();
    let mut first_line_of_batch = 1;
    let mut since: Option<Instant> = None;
    let mut eof = false;
    // The latency snapshot follows what this ingest writes (store::snapshot).
    let mut publisher = store::Publisher::new();
    while !eof {
        // Idle, it still wakes to publish a snapshot that is behind.
        let wait = since.map_or(publisher.interval(), |t| {
            INGEST_LINGER.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(Ok(raw)) => {
                lineno += 1;
                match ingest_line(&raw, metrics::now(), &policy) {
                    Ok(None) => {}
                    Ok(Some(m)) => {
                        if !nodes.contains_key(m.node()) {
                            // A site applied meanwhile: its nodes and policy.
                            nodes = store.node_ids()?;
                            policy = store.policy()?;
                        }
                        if nodes.contains_key(m.node()) {
                            if batch.is_empty() {
                                first_line_of_batch = lineno;
                                since = Some(Instant::now());
                            }
                            batch.push(m);
                        } else {
                            bad += 1;
                            eprintln!(
                                "{source}:{lineno}: unknown node {}: not in the site (see pdns-ha status)",
                                crate::text::quote(m.node())
                            );
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        eprintln!("{source}:{lineno}: {e}");
                    }
                }
            }
            Ok(Err(e)) => {
                eprintln!(
                    "{source}:{}: cannot read: {e}; this line and any after it were not read",
                    lineno + 1
                );
                bad += 1;
                eof = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if batch.is_empty() {
                    publisher.maybe_publish(&mut store, false);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
        }
        let due = since.is_some_and(|t| t.elapsed() >= INGEST_LINGER);
        if !batch.is_empty() && (eof || due || batch.len() >= INGEST_BATCH) {
            match store.write_metrics(&batch, "ingest", None, metrics::now()) {
                Ok(o) => {
                    stored += o.stored;
                    if o.too_old > 0 {
                        // Checked when read; only a batch that waited past a
                        // max age gets here.
                        bad += o.too_old;
                        eprintln!(
                            "{source}: {} sample(s) of lines {first_line_of_batch}-{lineno} grew older than their [policy] max age before they could be written: not stored",
                            o.too_old
                        );
                    }
                    for (node, state) in o.health_changes {
                        eprintln!("node {node} is now {state}");
                    }
                }
                Err(e) => {
                    let why = if store::is_busy(&e) {
                        format!(
                            "the database is locked by another writer for more than {} ms",
                            busy.as_millis()
                        )
                    } else {
                        format!("{e:#}")
                    };
                    eprintln!(
                        "error: {why}: lines {first_line_of_batch}-{lineno} of {source} were NOT stored ({} metrics); {stored} metrics before them were stored. Send those lines again.",
                        batch.len()
                    );
                    return Ok(2);
                }
            }
            batch.clear();
            since = None;
            publisher.maybe_publish(&mut store, eof);
        }
    }
    publisher.maybe_publish(&mut store, true);
    eprintln!("{stored} metric(s) stored, {bad} bad line(s)");
    Ok(if bad > 0 { 1 } else { 0 })
}

fn explain(db: &Path, qname: &str, qtype: &str, client: &str, json: bool) -> Result<i32> {
    let client: Prefix = client
        .parse()
        .map_err(|e| anyhow::anyhow!("--client: {e}"))?;
    Store::open_existing(db, Duration::from_secs(5))?;
    let mut engine = Engine::new(db);
    let e = crate::report::explain(&mut engine, qname, qtype, &client);
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        for l in e.text() {
            println!("{l}");
        }
    }
    Ok(0)
}

fn status(db: &Path, format: Format) -> Result<i32> {
    let store = Store::open_existing(db, Duration::from_secs(5))?;
    let mut engine = Engine::new(db);
    let s = crate::report::status_of(&store, &mut engine)?;
    match format {
        Format::Text => s.text().iter().for_each(|l| println!("{l}")),
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Prometheus => print!("{}", s.prometheus()),
    }
    Ok(0)
}

fn log(db: &Path, since: Option<i64>, node: Option<&str>, limit: usize, json: bool) -> Result<i32> {
    let store = Store::open_existing(db, Duration::from_secs(5))?;
    if let Some(n) = node
        && !store.node_ids()?.contains_key(n)
        && store.events(None, Some(n), 1)?.is_empty()
    {
        bail!("unknown node \"{n}\": see `pdns-ha status` for the nodes of the site");
    }
    let since = since.map(|s| metrics::now().saturating_sub(s));
    let events = store.events(since, node, limit)?;
    let mut out = std::io::stdout().lock();
    for e in &events {
        let line = if json {
            serde_json::to_string(e)?
        } else {
            crate::report::event_line(e)
        };
        if writeln!(out, "{line}").is_err() {
            break; // a closed pipe (| head)
        }
    }
    if events.is_empty() && !json {
        eprintln!(
            "no state change recorded{}",
            if since.is_some() { " in that time" } else { "" }
        );
    }
    Ok(0)
}

fn drain(db: &Path, node: &str, drained: bool) -> Result<i32> {
    let mut store = Store::open_existing(db, Duration::from_secs(10))?;
    if !store.set_drain(node, drained, metrics::now())? {
        bail!("unknown node \"{node}\": see `pdns-ha status` for the nodes of the site");
    }
    println!(
        "node {node} {}; answers change from the next query",
        if drained { "drained" } else { "undrained" }
    );
    Ok(0)
}
