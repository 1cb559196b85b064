//! `pdns-ha collect` as a child process of a test, its log in a file next
//! to the test database; killed on drop, with its log tail printed when the
//! test panics.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{BIN, Db};

/// `pdns-ha collect --db DB`, its stderr in a log file next to the database.
/// Killed on drop (its log tail printed when the test panics).
pub struct Collect {
    child: Option<Child>,
    log: PathBuf,
}

impl Collect {
    pub fn start(db: &Db) -> Collect {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = db
            .dir
            .path()
            .join(format!("collect-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let f = File::create(&log).expect("create the collect log");
        let child = Command::new(BIN)
            .arg("collect")
            .arg("--db")
            .arg(&db.path)
            .env_remove("PDNS_HA_DB")
            // Debug for the collector: every probe outcome is logged.
            .env("RUST_LOG", "info,pdns_ha::collector=debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log file"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN} collect: {e}"));
        Collect {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if collect has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        let c = self.child.as_mut().expect("collect was started");
        if let Ok(Some(st)) = c.try_wait() {
            panic!("pdns-ha collect exited ({st}):\n{}", self.log());
        }
    }

    /// SIGKILL, as a crash or the OOM killer would: nothing written on the
    /// way out. Waits for the exit.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("collect is running");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Sends SIGTERM and waits at most `within` for the exit: its status and
    /// how long it took.
    #[track_caller]
    pub fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let mut c = self.child.take().expect("collect is running");
        let start = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {} failed", c.id());
        loop {
            if let Some(st) = c.try_wait().expect("wait for collect") {
                return (st, start.elapsed());
            }
            if start.elapsed() > within {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "pdns-ha collect did not exit within {within:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collect {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- pdns-ha collect log (last {} lines) ----\n{}\n---- end ----",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}
