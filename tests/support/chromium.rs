//! A real browser for the tests that look at a page: Debian's
//! `chromium-headless-shell` (`PDNS_HA_CHROMIUM` names another binary),
//! run once per call with a profile of its own, `--no-sandbox` when running
//! as root (Chromium's sandbox refuses root), and killed after
//! [`TIMEOUT`]. `--dump-dom` gives the document as the browser built it;
//! `--screenshot` a PNG of what a person sees.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A browser run longer than this is killed and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Chromium {
    bin: PathBuf,
    /// The profile directory (under the test's temporary directory).
    profile: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

impl Chromium {
    /// The browser, with its profile under `dir`; None (said loudly) when
    /// it is not installed. With `PDNS_HA_REQUIRE_PDNS` set (as
    /// `scripts/test.sh` sets it, having installed the packages), a missing
    /// browser fails the test instead.
    pub fn find(dir: &Path) -> Option<Chromium> {
        let bin = std::env::var_os("PDNS_HA_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| on_path("chromium-headless-shell"));
        let Some(bin) = bin else {
            let msg = "chromium-headless-shell is not installed (apt-get install chromium-headless-shell): browser test skipped";
            if std::env::var_os("PDNS_HA_REQUIRE_PDNS").is_some() {
                panic!("{msg}");
            }
            eprintln!("!!! {msg}");
            return None;
        };
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        Some(Chromium { bin, profile })
    }

    /// Runs the browser on `url` with `args`; its standard output. Panics
    /// (with its standard error) if it fails or outlives [`TIMEOUT`].
    fn run(&self, url: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(&self.bin);
        if is_root() {
            cmd.arg("--no-sandbox");
        }
        let mut child = cmd
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args([
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ])
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // Read while it runs: a full pipe must not stop it.
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for the browser") {
                break Some(st);
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        match status {
            Some(st) if st.success() => out,
            Some(st) => panic!(
                "{} {args:?} {url} failed ({st}):\n{err}",
                self.bin.display()
            ),
            None => panic!(
                "{} {args:?} {url} did not finish within {TIMEOUT:?}; killed:\n{err}",
                self.bin.display()
            ),
        }
    }

    /// The document at `url` as the browser built it (`--dump-dom`).
    pub fn dump_dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom"])
    }

    /// A PNG of `url` as a `width`×`height` window shows it, into `file`.
    pub fn screenshot(&self, url: &str, file: &Path, (width, height): (u32, u32)) {
        self.run(
            url,
            &[
                &format!("--screenshot={}", file.display()),
                &format!("--window-size={width},{height}"),
                "--hide-scrollbars",
            ],
        );
        let png = std::fs::read(file)
            .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", file.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            file.display()
        );
    }
}

/// Copies a screenshot to the path named by `PDNS_HA_SCREENSHOT`, if set.
pub fn keep_screenshot(file: &Path) {
    if let Some(to) = std::env::var_os("PDNS_HA_SCREENSHOT") {
        std::fs::copy(file, &to).unwrap_or_else(|e| {
            panic!(
                "cannot copy the screenshot to {}: {e}",
                Path::new(&to).display()
            )
        });
        eprintln!("screenshot: {}", Path::new(&to).display());
    }
}
