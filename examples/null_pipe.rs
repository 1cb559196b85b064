//! The floor for pipe benchmarks: a coprocess that does nothing but the
//! protocol (HELO -> OK, every other line -> END), with the same buffered
//! I/O as `pdns-ha pipe`.

use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = stdout.lock();
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply: &[u8] = if line.starts_with(b"HELO") {
            b"OK\tnull\n"
        } else {
            b"END\n"
        };
        if output
            .write_all(reply)
            .and_then(|_| output.flush())
            .is_err()
        {
            return;
        }
    }
}
