//! Drives a pipe coprocess the way PowerDNS does: HELO, then one question at
//! a time, waiting for END (or FAIL) before the next. Prints throughput,
//! per-question latency and the coprocess's memory (resident before the
//! first question and after the last, peak resident, and private:
//! `RssAnon`, what each extra coprocess costs).
//!
//! ```text
//! pipe_bench [--questions N] [--qname NAME] [--qtype TYPE] [--subnets N]
//!            [--abi N] [--name-bytes N] -- COMMAND [ARGS...]
//! ```
//! `--subnets N` cycles the ECS subnet through N distinct /24 networks
//! (10.0.0.0/24, 10.0.1.0/24, ... in a scrambled order); default 1.
//! `--name-bytes N` asks a different name of N bytes in each question
//! (`00000042.aaa...`) instead of `--qname`: a flood of oversized names.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut questions = 100_000usize;
    let mut qname = "_sip._udp.voip.example.com".to_string();
    let mut qtype = "ANY".to_string();
    let mut subnets = 1u32;
    let mut abi = 5u8;
    let mut name_bytes = 0usize;
    let mut i = 0;
    while i < args.len() && args[i] != "--" {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--questions" => questions = v.parse().expect("--questions N"),
            "--qname" => qname = v,
            "--qtype" => qtype = v,
            "--subnets" => subnets = v.parse().expect("--subnets N"),
            "--abi" => abi = v.parse().expect("--abi N"),
            "--name-bytes" => name_bytes = v.parse().expect("--name-bytes N"),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    let cmd = &args[i + 1..];
    assert!(
        !cmd.is_empty(),
        "usage: pipe_bench [options] -- COMMAND [ARGS...]"
    );
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the coprocess");
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    writeln!(to, "HELO\t{abi}").unwrap();
    to.flush().unwrap();
    from.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK"), "bad banner: {line}");
    let status =
        |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_before = status(child.id());

    let question = |n: usize| -> String {
        // Scramble so consecutive questions hit different networks.
        let k = ((n as u64).wrapping_mul(2_654_435_761) % subnets as u64) as u32;
        let subnet = format!("10.{}.{}.0/24", (k >> 8) & 0xff, k & 0xff);
        let subnet = if subnets > 65536 {
            format!("{}.{}.{}.0/24", 10 + (k >> 16), (k >> 8) & 0xff, k & 0xff)
        } else {
            subnet
        };
        let remote = subnet.trim_end_matches(".0/24").to_string() + ".1";
        let long;
        let qname = if name_bytes > 0 {
            long = format!("{n:08}.{}", "a".repeat(name_bytes.saturating_sub(9)));
            &long
        } else {
            &qname
        };
        match abi {
            1 => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}\n"),
            2 => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}\t127.0.0.1\n"),
            _ => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}\t127.0.0.1\t{subnet}\n"),
        }
    };
    let qs: Vec<String> = (0..questions.min(1 << 20)).map(question).collect();
    let mut lat = Vec::with_capacity(questions);
    let mut records = 0usize;
    let start = Instant::now();
    for n in 0..questions {
        let t = Instant::now();
        to.write_all(qs[n % qs.len()].as_bytes()).unwrap();
        to.flush().unwrap();
        loop {
            line.clear();
            if from.read_line(&mut line).unwrap() == 0 {
                panic!("the coprocess closed its output");
            }
            if line.starts_with("END") || line.starts_with("FAIL") {
                break;
            }
            if line.starts_with("DATA") {
                records += 1;
            }
        }
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let mem = status(child.id());
    let field = |mem: &str, k: &str| {
        mem.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    drop(to);
    let _ = child.wait();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!(
        "questions={questions} qps={:.0} median_us={:.1} p99_us={:.1} max_us={:.1} records_per_answer={:.2} rss_kib={} hwm_kib={} anon_kib={} rss_before_kib={}",
        questions as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        records as f64 / questions as f64,
        field(&mem, "VmRSS:"),
        field(&mem, "VmHWM:"),
        field(&mem, "RssAnon:"),
        field(&rss_before, "VmRSS:")
    );
}
