//! Certificates made by the test with the `openssl` command: a test CA,
//! another CA nobody trusts, and server certificates signed by either with
//! chosen names and validity dates (`openssl ca -startdate -enddate`, so an
//! expired certificate needs no clock games).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    pub dir: PathBuf,
}

/// A server certificate and its key.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which CA signs a leaf.
#[derive(Clone, Copy)]
pub enum Signer {
    /// The test CA (`ca.crt`), which the tests trust.
    Test,
    /// Another CA (`other.crt`), which nothing trusts.
    Other,
}

/// `openssl req` arguments for a new P-256 key, unencrypted.
const NEW_KEY: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        o.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp paths")
}

impl TestCa {
    /// The two CAs, in `dir` (which must exist).
    pub fn new(dir: &Path) -> TestCa {
        for name in ["ca", "other"] {
            let (key, crt, subj) = (
                format!("{name}.key"),
                format!("{name}.crt"),
                format!("/CN=pdns-ha test {name}"),
            );
            openssl(
                dir,
                &[
                    &["req", "-x509"][..],
                    NEW_KEY,
                    &[
                        "-keyout", &key, "-out", &crt, "-days", "3650", "-subj", &subj,
                    ],
                    &["-addext", "basicConstraints=critical,CA:TRUE"],
                    &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                ]
                .concat(),
            );
        }
        std::fs::write(dir.join("index.txt"), "").expect("write index.txt");
        std::fs::write(dir.join("serial"), "01\n").expect("write serial");
        std::fs::create_dir_all(dir.join("newcerts")).expect("create newcerts");
        let d = s(dir);
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = test\n[test]\ndir = {d}\ndatabase = {d}/index.txt\nnew_certs_dir = {d}/newcerts\nserial = {d}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\nemail_in_dn = no\n[any]\ncommonName = supplied\n"
            ),
        )
        .expect("write ca.cnf");
        TestCa {
            dir: dir.to_path_buf(),
        }
    }

    /// The test CA's certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A server certificate `name` for `san` (`DNS:sip.test,IP:127.0.0.1`),
    /// valid from `start` to `end` (`YYYYMMDDHHMMSSZ`), signed by `by`.
    pub fn leaf(&self, name: &str, san: &str, start: &str, end: &str, by: Signer) -> Leaf {
        let dir = &self.dir;
        let (key, csr, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("/CN={name}"),
        );
        openssl(
            dir,
            &[
                &["req", "-new"][..],
                NEW_KEY,
                &["-keyout", &key, "-out", &csr, "-subj", &subj],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nsubjectAltName={san}\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write the extensions");
        let ca = match by {
            Signer::Test => "ca",
            Signer::Other => "other",
        };
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-notext",
                "-cert",
                &format!("{ca}.crt"),
                "-keyfile",
                &format!("{ca}.key"),
                "-startdate",
                start,
                "-enddate",
                end,
                "-extfile",
                &format!("{name}.ext"),
                "-in",
                &format!("{name}.csr"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
        Leaf {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        }
    }
}

/// `t` (Unix seconds) as `YYYYMMDDHHMMSSZ`, the form `openssl ca` takes.
pub fn asn1_time(t: i64) -> String {
    // clock::utc gives "YYYY-MM-DD HH:MM:SSZ".
    pdns_ha::clock::utc(t)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'Z')
        .collect()
}
