//! A DNS load generator for per-client answers: every query carries an EDNS
//! Client Subnet option (RFC 7871) with the /24 of its own client network,
//! which dnsperf cannot vary per query. It keeps a fixed number of queries
//! in flight over one UDP socket for a fixed time, matches the responses by
//! id, and checks each one: NOERROR with at least one SRV answer, and an ECS
//! option echoing the network with a non-zero scope (an answer for that
//! network only, so nothing was served from a shared cache). With
//! `--dnssec` each query also sets the DNSSEC OK bit, and each answer must
//! carry an RRSIG (a signed zone).
//!
//! ```text
//! dnsload --port PORT [--server 127.0.0.1] [--networks N] [--seconds S]
//!         [--inflight N] [--qname NAME] [--timeout-ms N] [--dnssec]
//! ```
//! `--networks N` (default 1) asks for N distinct client networks, the k-th
//! being `10+k/65536 . k/256%256 . k%256 .0/24` (10.0.0.0/24, 10.0.1.0/24,
//! ...), in a scrambled order that visits all N before any repeats.
//!
//! Prints one line of `key=value` fields: `qps` counts the good answers
//! (`ok`) per second of the run; `p50_us`/`p99_us` are over every matched
//! response; `distinct_answers` counts the different SRV record sets seen
//! (the RRsets a signing server signs: their order in the message does not
//! count, their priorities and targets do); `cpu_user_s`/`cpu_sys_s` are the
//! generator's own CPU. Exits 1 when any query went wrong (`servfail`,
//! `other_rcode`, `no_srv`, `no_scope`, `no_rrsig`, `truncated`,
//! `timeouts`, `errors`).

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[path = "../tests/support/dnswire.rs"]
mod dnswire;

use dnswire::{Rdata, Response, TYPE_SRV, build_query_do, parse_response};

/// The k-th client network of the benchmark (its /24 address).
fn network(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(10 + (k >> 16) as u8, (k >> 8) as u8, k as u8, 0)
}

/// The k-th query's network index: `k * prime mod n`, a permutation of
/// 0..n for each block of n queries, scrambled.
fn network_index(k: u64, n: u32) -> u32 {
    (k.wrapping_mul(2_654_435_761) % n as u64) as u32
}

#[derive(Default)]
struct Counts {
    sent: u64,
    ok: u64,
    servfail: u64,
    other_rcode: u64,
    no_srv: u64,
    no_scope: u64,
    no_rrsig: u64,
    truncated: u64,
    timeouts: u64,
    unmatched: u64,
    errors: u64,
}

impl Counts {
    /// Files a matched response; true if it is a good answer (with an
    /// RRSIG too if `signed`).
    fn file(&mut self, resp: &Response, net: Ipv4Addr, signed: bool) -> bool {
        if resp.truncated {
            self.truncated += 1;
        } else if resp.rcode == 2 {
            self.servfail += 1;
        } else if resp.rcode != 0 {
            self.other_rcode += 1;
        } else if resp.srv_count() == 0 {
            self.no_srv += 1;
        } else if !matches!(&resp.ecs, Some(e) if e.family == 1 && e.source == 24
            && e.scope > 0 && e.address == net.octets()[..3])
        {
            self.no_scope += 1;
        } else if signed && resp.rrsig_count() == 0 {
            self.no_rrsig += 1;
        } else {
            self.ok += 1;
            return true;
        }
        false
    }
    fn failures(&self) -> u64 {
        self.servfail
            + self.other_rcode
            + self.no_srv
            + self.no_scope
            + self.no_rrsig
            + self.truncated
            + self.timeouts
            + self.errors
    }
}

struct InFlight {
    seq: u64,
    sent: Instant,
    net: Ipv4Addr,
}

/// A digest of the SRV records of an answer as a set (sorted): equal for
/// answers that carry the same RRset in any order.
fn srv_set_digest(resp: &Response) -> u64 {
    let mut srv: Vec<(u16, u16, u16, &str)> = resp
        .answers
        .iter()
        .filter_map(|a| match a {
            Rdata::Srv {
                priority,
                weight,
                port,
                target,
            } => Some((*priority, *weight, *port, target.as_str())),
            _ => None,
        })
        .collect();
    srv.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    srv.hash(&mut h);
    h.finish()
}

/// The process's own user and system CPU seconds (/proc/self/stat).
fn own_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let tick = 100.0; // USER_HZ on Linux
    (
        f.get(11).copied().unwrap_or(0.0) / tick,
        f.get(12).copied().unwrap_or(0.0) / tick,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut server: Ipv4Addr = Ipv4Addr::LOCALHOST;
    let mut networks = 1u32;
    let mut seconds = 10.0f64;
    let mut inflight = 32usize;
    let mut qname = "_sip._udp.voip.example.com".to_string();
    let mut timeout_ms = 1000u64;
    let mut dnssec = false;
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        if opt == "--dnssec" {
            dnssec = true;
            continue;
        }
        let v = it.next().map(String::as_str).unwrap_or("");
        match opt.as_str() {
            "--port" => port = v.parse().expect("--port PORT"),
            "--server" => server = v.parse().expect("--server IPV4"),
            "--networks" => networks = v.parse().expect("--networks N"),
            "--seconds" => seconds = v.parse().expect("--seconds S"),
            "--inflight" => inflight = v.parse().expect("--inflight N"),
            "--qname" => qname = v.to_string(),
            "--timeout-ms" => timeout_ms = v.parse().expect("--timeout-ms N"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(port != 0, "usage: dnsload --port PORT [options]");
    assert!(
        (1..=246 << 16).contains(&networks),
        "--networks 1..16121856"
    );
    assert!((1..=16384).contains(&inflight), "--inflight 1..16384");
    let timeout = Duration::from_millis(timeout_ms);

    let local = if server.is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let sock = UdpSocket::bind((local, 0)).expect("bind");
    sock.connect(SocketAddr::from((server, port)))
        .expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");

    // One template per query; only the id and the ECS address change.
    let mut query = build_query_do(0, &qname, TYPE_SRV, network(0), dnssec);
    let ecs_at = query.len() - 3;
    let mut slots: Vec<Option<InFlight>> = (0..65536).map(|_| None).collect();
    let mut order: VecDeque<(u16, u64)> = VecDeque::with_capacity(inflight * 2);
    let mut counts = Counts::default();
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut distinct: HashSet<u64> = HashSet::new();
    let mut outstanding = 0usize;
    let mut seq = 0u64;
    let mut next_id = 0u16;
    let mut buf = [0u8; 4096];

    let cpu0 = own_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut ok_in_window = 0u64;
    let mut send_one = |now: Instant,
                        slots: &mut Vec<Option<InFlight>>,
                        order: &mut VecDeque<(u16, u64)>,
                        counts: &mut Counts,
                        outstanding: &mut usize| {
        // Skip ids still waiting for an answer (only after wrapping around).
        while slots[next_id as usize].is_some() {
            next_id = next_id.wrapping_add(1);
        }
        let id = next_id;
        next_id = next_id.wrapping_add(1);
        let net = network(network_index(seq, networks));
        query[..2].copy_from_slice(&id.to_be_bytes());
        query[ecs_at..].copy_from_slice(&net.octets()[..3]);
        counts.sent += 1;
        if sock.send(&query).is_err() {
            counts.errors += 1;
            return;
        }
        slots[id as usize] = Some(InFlight {
            seq,
            sent: now,
            net,
        });
        order.push_back((id, seq));
        seq += 1;
        *outstanding += 1;
    };

    loop {
        // Keep `inflight` queries outstanding until the end.
        let now = Instant::now();
        if now < end {
            while outstanding < inflight {
                let before = counts.errors;
                send_one(now, &mut slots, &mut order, &mut counts, &mut outstanding);
                if counts.errors > before {
                    break;
                }
            }
        } else if outstanding == 0 || now >= end + timeout {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let now = Instant::now();
                let Some(resp) = parse_response(&buf[..n]) else {
                    counts.unmatched += 1;
                    continue;
                };
                let Some(f) = slots[resp.id as usize].take() else {
                    counts.unmatched += 1; // late (timed out) or unknown id
                    continue;
                };
                outstanding -= 1;
                latencies.push(now.duration_since(f.sent).as_micros().min(u32::MAX as u128) as u32);
                if counts.file(&resp, f.net, dnssec) {
                    distinct.insert(srv_set_digest(&resp));
                    if now <= end {
                        ok_in_window += 1;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                // ICMP port unreachable (no server) and the like.
                counts.errors += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Expire the oldest queries (they are replaced at the top).
        let now = Instant::now();
        while let Some(&(id, s)) = order.front() {
            match &slots[id as usize] {
                Some(f) if f.seq == s => {
                    if now.duration_since(f.sent) < timeout {
                        break;
                    }
                    slots[id as usize] = None;
                    counts.timeouts += 1;
                    outstanding -= 1;
                    order.pop_front();
                }
                _ => {
                    order.pop_front();
                }
            }
        }
    }
    counts.timeouts += outstanding as u64;
    let cpu1 = own_cpu();

    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            0
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize]
        }
    };
    println!(
        "dnsload networks={networks} inflight={inflight} seconds={seconds} sent={} answered={} qps={:.0} p50_us={} p99_us={} max_us={} ok={} distinct_answers={} servfail={} other_rcode={} no_srv={} no_scope={} no_rrsig={} truncated={} timeouts={} unmatched={} errors={} cpu_user_s={:.2} cpu_sys_s={:.2}",
        counts.sent,
        latencies.len(),
        ok_in_window as f64 / seconds,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        counts.ok,
        distinct.len(),
        counts.servfail,
        counts.other_rcode,
        counts.no_srv,
        counts.no_scope,
        counts.no_rrsig,
        counts.truncated,
        counts.timeouts,
        counts.unmatched,
        counts.errors,
        cpu1.0 - cpu0.0,
        cpu1.1 - cpu0.1,
    );
    if counts.failures() > 0 || counts.ok == 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnswire::{Ecs, TYPE_RRSIG, build_query, push_name};

    /// A response to `query` as a server would write it: QR and AA set,
    /// `srv` SRV answers (the owner compressed to the question), and the
    /// OPT record with the ECS option and `scope`.
    fn answer(query: &[u8], rcode: u8, srv: usize, scope: Option<u8>) -> Vec<u8> {
        let opt_at = query.len() - 22; // the OPT record: 11 bytes + 11 of rdata
        let mut r = query[..opt_at].to_vec();
        r[2] = 0x84; // QR, AA
        r[3] = rcode;
        r[6..8].copy_from_slice(&(srv as u16).to_be_bytes());
        r[10..12].copy_from_slice(&(scope.is_some() as u16).to_be_bytes());
        for i in 0..srv {
            r.extend_from_slice(&[0xc0, 12]); // pointer to the question name
            r.extend_from_slice(&TYPE_SRV.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            let mut rdata = vec![0, i as u8, 0, 100, 0x13, 0xc4];
            push_name(&mut rdata, &format!("node{i}.voip.example.com"));
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
        }
        if let Some(scope) = scope {
            let mut opt = query[opt_at..].to_vec();
            opt[11 + 4 + 3] = scope; // after the OPT header and option header: family, source, scope
            r.extend_from_slice(&opt);
        }
        r
    }

    #[test]
    fn the_query_is_wire_format_with_the_ecs_of_its_network() {
        let q = build_query(0x1234, "_sip._udp.voip.example.com", TYPE_SRV, network(258));
        assert_eq!(&q[..12], &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        let mut name = Vec::new();
        push_name(&mut name, "_sip._udp.voip.example.com.");
        assert_eq!(&q[12..12 + name.len()], &name[..]);
        assert_eq!(name[0], 4);
        assert_eq!(&name[1..5], b"_sip");
        let rest = &q[12 + name.len()..];
        assert_eq!(
            rest,
            &[
                0, 33, 0, 1, // SRV IN
                0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11, // OPT, 1232, rdlen 11
                0, 8, 0, 7, 0, 1, 24, 0, 10, 1, 2, // ECS: IPv4 /24 scope 0 10.1.2
            ]
        );
        // The query parses as a query, not a response.
        assert_eq!(parse_response(&q), None);
    }

    #[test]
    fn networks_are_distinct_and_scrambled() {
        assert_eq!(network(0), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(network(65536 + 257), Ipv4Addr::new(11, 1, 1, 0));
        let n = 100_000;
        let mut seen = vec![false; n as usize];
        for k in 0..n as u64 {
            seen[network_index(k, n) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every network once per round");
        assert_ne!(network_index(1, n), 1, "scrambled");
        assert_eq!(network_index(7, 1), 0);
    }

    #[test]
    fn a_good_answer_has_srv_records_and_the_ecs_scope() {
        let net = network(5);
        let q = build_query(7, "_sip._udp.voip.example.com", TYPE_SRV, net);
        let r = parse_response(&answer(&q, 0, 3, Some(24))).unwrap();
        assert_eq!(
            r,
            Response {
                id: 7,
                rcode: 0,
                truncated: false,
                answers: (0..3)
                    .map(|i| Rdata::Srv {
                        priority: i,
                        weight: 100,
                        port: 5060,
                        target: format!("node{i}.voip.example.com"),
                    })
                    .collect(),
                ecs: Some(Ecs {
                    family: 1,
                    source: 24,
                    scope: 24,
                    address: vec![10, 0, 5]
                }),
            }
        );
        let mut c = Counts::default();
        assert!(c.file(&r, net, false));
        assert_eq!(c.ok, 1);
        // The same answer for another network is not good.
        assert!(!c.file(&r, network(6), false));
        assert_eq!(c.no_scope, 1);
    }

    #[test]
    fn bad_answers_are_counted_by_kind() {
        let net = network(0);
        let q = build_query(1, "_sip._udp.voip.example.com", TYPE_SRV, net);
        let mut c = Counts::default();
        let cases = [
            (answer(&q, 2, 0, Some(0)), "servfail"),
            (answer(&q, 3, 0, Some(24)), "other"),
            (answer(&q, 0, 0, Some(24)), "no_srv"),
            (answer(&q, 0, 2, Some(0)), "scope 0"),
            (answer(&q, 0, 2, None), "no ECS"),
        ];
        for (resp, what) in &cases {
            let r = parse_response(resp).unwrap_or_else(|| panic!("{what}"));
            assert!(!c.file(&r, net, false), "{what}");
        }
        let mut tc = answer(&q, 0, 1, Some(24));
        tc[2] |= 0x02;
        assert!(!c.file(&parse_response(&tc).unwrap(), net, false));
        assert_eq!(
            (c.servfail, c.other_rcode, c.no_srv, c.no_scope, c.truncated),
            (1, 1, 1, 2, 1)
        );
        assert_eq!(c.failures(), 6);
    }

    /// `resp` with one more answer record: an RRSIG (its data is not read).
    fn with_rrsig(mut resp: Vec<u8>) -> Vec<u8> {
        let an = u16::from_be_bytes([resp[6], resp[7]]) + 1;
        resp[6..8].copy_from_slice(&an.to_be_bytes());
        // After the question and the SRV answers, before the OPT record:
        // rebuild by appending to a copy without the additional section.
        let ar = u16::from_be_bytes([resp[10], resp[11]]);
        let opt = if ar > 0 {
            resp.split_off(resp.len() - 22)
        } else {
            Vec::new()
        };
        resp.extend_from_slice(&[0xc0, 12]);
        resp.extend_from_slice(&TYPE_RRSIG.to_be_bytes());
        resp.extend_from_slice(&[0, 1, 0, 0, 0, 30, 0, 3, 0, 33, 13]);
        resp.extend_from_slice(&opt);
        resp
    }

    #[test]
    fn with_dnssec_the_query_sets_do_and_an_answer_needs_its_rrsig() {
        let net = network(9);
        let plain = build_query(3, "_sip._udp.voip.example.com", TYPE_SRV, net);
        let q = build_query_do(3, "_sip._udp.voip.example.com", TYPE_SRV, net, true);
        assert_eq!(q.len(), plain.len());
        // Only the DO bit differs: the first flags byte of the OPT record.
        let at = plain.len() - 22 + 7;
        let diff: Vec<usize> = (0..q.len()).filter(|&i| q[i] != plain[i]).collect();
        assert_eq!(diff, [at]);
        assert_eq!((plain[at], q[at]), (0, 0x80));
        assert_eq!(
            build_query_do(3, "_sip._udp.voip.example.com", TYPE_SRV, net, false),
            plain
        );

        let unsigned = parse_response(&answer(&q, 0, 3, Some(24))).unwrap();
        let signed = parse_response(&with_rrsig(answer(&q, 0, 3, Some(24)))).unwrap();
        assert_eq!(signed.rrsig_count(), 1);
        assert_eq!(signed.srv_count(), 3);
        assert_eq!(signed.ecs, unsigned.ecs);
        let mut c = Counts::default();
        assert!(!c.file(&unsigned, net, true));
        assert_eq!(c.no_rrsig, 1);
        assert!(c.file(&signed, net, true));
        assert!(c.file(&unsigned, net, false), "unsigned is fine without DO");
        assert_eq!((c.ok, c.failures()), (2, 1));
    }

    #[test]
    fn answers_are_told_apart_by_their_srv_set_not_its_order() {
        let srv = |p: u16, t: &str| Rdata::Srv {
            priority: p,
            weight: 100,
            port: 5060,
            target: t.to_string(),
        };
        let resp = |answers: Vec<Rdata>| Response {
            id: 1,
            rcode: 0,
            truncated: false,
            answers,
            ecs: None,
        };
        let a = resp(vec![srv(0, "a"), srv(1, "b"), Rdata::Other(TYPE_RRSIG)]);
        let shuffled = resp(vec![Rdata::Other(TYPE_RRSIG), srv(1, "b"), srv(0, "a")]);
        let other_tiers = resp(vec![srv(0, "a"), srv(0, "b")]);
        let other_order = resp(vec![srv(1, "a"), srv(0, "b")]);
        assert_eq!(srv_set_digest(&a), srv_set_digest(&shuffled));
        assert_ne!(srv_set_digest(&a), srv_set_digest(&other_tiers));
        assert_ne!(srv_set_digest(&a), srv_set_digest(&other_order));
    }

    #[test]
    fn truncated_or_garbled_packets_are_not_responses() {
        let q = build_query(1, "_sip._udp.voip.example.com", TYPE_SRV, network(0));
        let full = answer(&q, 0, 3, Some(24));
        for n in 0..full.len() {
            assert_eq!(parse_response(&full[..n]), None, "cut at {n}");
        }
        let mut bad = full.clone();
        bad[12] = 0x80; // a label type that does not exist
        assert_eq!(parse_response(&bad), None);
    }
}
