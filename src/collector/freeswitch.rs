//! Pure parsers for what FreeSWITCH reports: HEARTBEAT event headers, the
//! call quality of a CHANNEL_HANGUP_COMPLETE event, the `api status`,
//! `show calls count` and `fsctl max_sessions` bodies, and the `sofia
//! xmlstatus profile P reg` XML (registration ping times). No I/O; garbage
//! gives an error, never a panic.

use std::net::IpAddr;

/// A node's load as FreeSWITCH reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub sessions: u32,
    /// `None` when not reported (or reported as 0).
    pub max_sessions: Option<u32>,
    /// Idle CPU in percent, 0 to 100.
    pub idle_cpu: Option<f64>,
}

/// One registration whose OPTIONS ping FreeSWITCH got an answer to.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub user: String,
    pub contact: String,
    pub ip: IpAddr,
    pub ping_ms: f64,
}

/// The registrations of one profile, split by usefulness.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registrations {
    /// `ping-status` Reachable with a valid `ping-time` and `network-ip`.
    pub reachable: Vec<Registration>,
    /// Registrations that are not Reachable (their ping time is meaningless).
    pub unreachable: usize,
    /// Reachable but without a usable ping time or address.
    pub unusable: usize,
}

/// The receive quality of one call, from its hang-up event.
#[derive(Clone, Debug, PartialEq)]
pub struct CallQuality {
    /// Where the call's signalling came from (the phone, or its NAT).
    pub client: IpAddr,
    /// `rtp_audio_in_mos`, 1 to 4.5.
    pub mos: f64,
    /// Packets lost or late, in percent of those expected:
    /// `flaw_total / (media_packet_count + flaw_total)`.
    pub loss_pct: Option<f64>,
    /// `rtp_audio_in_jitter_max_variance` (ms), when reported.
    pub jitter_ms: Option<f64>,
}

/// Why a hang-up event gave no quality sample.
#[derive(Clone, Debug, PartialEq)]
pub enum NoQuality {
    /// Not a call the phone placed to this server (`Call-Direction` is not
    /// `inbound`): its caller address is not the far end of its media.
    NotInbound,
    /// No audio received through this server (bypass media, failed before
    /// answer): no `rtp_audio_in_*` figures, or no media packets.
    NoMedia,
    /// A field is missing or not believable: the event is ignored.
    Bad(String),
}

/// Largest believable jitter; above is dropped as garbage.
const MAX_JITTER_MS: f64 = 60_000.0;

/// The call quality in the headers of a `CHANNEL_HANGUP_COMPLETE` event,
/// looked up by `get` (case-insensitive, values URL-decoded). Only inbound
/// calls that received media count (see [`NoQuality`]). The client is
/// `Caller-Network-Addr`, else `variable_sip_network_ip`.
pub fn hangup_quality<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<CallQuality, NoQuality> {
    let bad = |s: String| Err(NoQuality::Bad(s));
    match get("Call-Direction") {
        Some(d) if d.trim() == "inbound" => {}
        Some(_) => return Err(NoQuality::NotInbound),
        None => return bad("no Call-Direction header".into()),
    }
    let Some(packets) = get("variable_rtp_audio_in_media_packet_count") else {
        return Err(NoQuality::NoMedia);
    };
    let packets: u64 = match packets.trim().parse() {
        Ok(0) => return Err(NoQuality::NoMedia),
        Ok(n) => n,
        Err(_) => {
            return bad(format!(
                "rtp_audio_in_media_packet_count {} is not a whole number",
                excerpt(packets)
            ));
        }
    };
    let mos = match get("variable_rtp_audio_in_mos") {
        None => return bad("media packets but no rtp_audio_in_mos".into()),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(m) if (crate::metrics::MOS_MIN..=crate::metrics::MOS_MAX).contains(&m) => m,
            _ => {
                return bad(format!(
                    "rtp_audio_in_mos {} is not a MOS from {} to {}",
                    excerpt(v),
                    crate::metrics::MOS_MIN,
                    crate::metrics::MOS_MAX
                ));
            }
        },
    };
    let addr = get("Caller-Network-Addr")
        .filter(|v| !v.trim().is_empty())
        .or_else(|| get("variable_sip_network_ip"));
    let client = match addr {
        None => return bad("no Caller-Network-Addr or sip_network_ip".into()),
        // An IPv4 phone seen by a dual-stack socket is counted as IPv4.
        Some(v) => match parse_ip(v).map(|ip| ip.to_canonical()) {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => {
                return bad(format!(
                    "caller address {} is not an IP address",
                    excerpt(v)
                ));
            }
        },
    };
    let loss_pct = get("variable_rtp_audio_in_flaw_total")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|flaws| 100.0 * flaws as f64 / (packets as f64 + flaws as f64));
    let jitter_ms = get("variable_rtp_audio_in_jitter_max_variance")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|j| j.is_finite() && (0.0..=MAX_JITTER_MS).contains(j));
    Ok(CallQuality {
        client,
        mos,
        loss_pct,
        jitter_ms,
    })
}

/// Largest believable ping time; anything above is dropped as garbage.
const MAX_PING_MS: f64 = 60_000.0;

/// Load from the headers of a HEARTBEAT event (`Session-Count`,
/// `Max-Sessions`, `Idle-CPU`), looked up by `get` (case-insensitive).
pub fn heartbeat_load<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Load, String> {
    let sessions = match get("Session-Count") {
        Some(v) => parse_u32(v).ok_or_else(|| format!("Session-Count '{v}' is not a number"))?,
        None => return Err("HEARTBEAT without a Session-Count header".into()),
    };
    let max_sessions = get("Max-Sessions").and_then(parse_u32).filter(|&m| m > 0);
    let idle_cpu = get("Idle-CPU").and_then(parse_percent);
    Ok(Load {
        sessions,
        max_sessions,
        idle_cpu,
    })
}

/// Load from the body of `api status`.
pub fn status_load(body: &str) -> Result<Load, String> {
    let mut sessions = None;
    let mut max_sessions = None;
    let mut idle_cpu = None;
    for line in body.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(v) = line.trim().strip_prefix("min idle cpu ") {
            idle_cpu = v.trim().split('/').nth(1).and_then(parse_percent);
            continue;
        }
        let [n, unit, rest @ ..] = words.as_slice() else {
            continue;
        };
        if !unit.starts_with("session") {
            continue;
        }
        let Some(n) = parse_u32(n) else { continue };
        match rest {
            ["-", ..] => sessions = Some(n),
            ["max"] => max_sessions = Some(n).filter(|&m| m > 0),
            _ => {}
        }
    }
    match sessions {
        Some(sessions) => Ok(Load {
            sessions,
            max_sessions,
            idle_cpu,
        }),
        None => Err(format!(
            "no 'N session(s) - peak ...' line in the api status output: {}",
            excerpt(body)
        )),
    }
}

/// Sessions from `api show calls count` (`\n17 total.\n`).
pub fn calls_count(body: &str) -> Result<u32, String> {
    let words: Vec<&str> = body.split_whitespace().collect();
    match words.as_slice() {
        [n, total, ..] if total.starts_with("total") => {
            parse_u32(n).ok_or_else(|| format!("'{n}' is not a call count"))
        }
        _ => Err(format!(
            "not a 'show calls count' answer: {}",
            excerpt(body)
        )),
    }
}

/// Max sessions from `api fsctl max_sessions` (`+OK max sessions: 1000`).
pub fn fsctl_max_sessions(body: &str) -> Result<u32, String> {
    body.trim()
        .strip_prefix("+OK")
        .and_then(|r| r.trim().strip_prefix("max sessions:"))
        .and_then(|n| parse_u32(n.trim()))
        .ok_or_else(|| format!("not an 'fsctl max_sessions' answer: {}", excerpt(body)))
}

/// Registrations from `sofia xmlstatus profile P reg`.
pub fn xmlstatus_registrations(xml: &str) -> Result<Registrations, String> {
    let t = xml.trim_start();
    if !t.starts_with('<') || !(t.contains("<profile") || t.contains("<registrations")) {
        return Err(format!("not sofia xmlstatus XML: {}", excerpt(xml)));
    }
    let mut out = Registrations::default();
    let mut rest = t;
    while let Some(start) = find_open_tag(rest, "registration") {
        let after = &rest[start..];
        let Some(end) = after.find("</registration>") else {
            return Err("truncated XML: <registration> without </registration>".into());
        };
        let block = &after[..end];
        rest = &after[end + "</registration>".len()..];
        classify(block, &mut out)?;
    }
    Ok(out)
}

fn classify(block: &str, out: &mut Registrations) -> Result<(), String> {
    if element(block, "ping-status")?.as_deref() != Some("Reachable") {
        out.unreachable += 1;
        return Ok(());
    }
    let ping = element(block, "ping-time")?.and_then(|v| v.trim().parse::<f64>().ok());
    let ip = element(block, "network-ip")?.and_then(|v| parse_ip(&v));
    match (ping, ip) {
        (Some(ping_ms), Some(ip))
            if ping_ms.is_finite() && (0.0..=MAX_PING_MS).contains(&ping_ms) =>
        {
            out.reachable.push(Registration {
                user: element(block, "user")?.unwrap_or_default(),
                contact: element(block, "contact")?.unwrap_or_default(),
                ip,
                ping_ms,
            });
        }
        _ => out.unusable += 1,
    }
    Ok(())
}

/// Position of `<name>` or `<name ...>` (not `<names>`).
fn find_open_tag(s: &str, name: &str) -> Option<usize> {
    let pat = format!("<{name}");
    let mut from = 0;
    while let Some(p) = s[from..].find(&pat) {
        let at = from + p;
        match s[at + pat.len()..].chars().next() {
            Some('>') | Some(' ') | Some('\t') | Some('\n') | Some('\r') => return Some(at),
            _ => from = at + pat.len(),
        }
    }
    None
}

/// Text of the first child element `name` in `block`, unescaped; `<name/>`
/// gives an empty string, a missing element `None`.
fn element(block: &str, name: &str) -> Result<Option<String>, String> {
    let Some(at) = find_open_tag(block, name).or_else(|| block.find(&format!("<{name}/>"))) else {
        return Ok(None);
    };
    let open = &block[at..];
    let Some(gt) = open.find('>') else {
        return Err(format!("truncated <{name}> element"));
    };
    if open[..gt].ends_with('/') {
        return Ok(Some(String::new()));
    }
    let content = &open[gt + 1..];
    let close = format!("</{name}>");
    let Some(end) = content.find(&close) else {
        return Err(format!("<{name}> without {close}"));
    };
    Ok(Some(xml_unescape(&content[..end]).trim().to_string()))
}

/// Resolves the five XML entities, numeric references and CDATA sections.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(cdata) = tail.strip_prefix("<![CDATA[")
            && let Some(end) = cdata.find("]]>")
        {
            out.push_str(&cdata[..end]);
            rest = &cdata[end + 3..];
            continue;
        }
        if tail.starts_with('&')
            && let Some(semi) = tail.bytes().take(12).position(|b| b == b';')
            && let Some(c) = entity(&tail[1..semi])
        {
            out.push(c);
            rest = &tail[semi + 1..];
            continue;
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
            {
                u32::from_str_radix(h, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(code)
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn parse_u32(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

fn parse_percent(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(0.0, 100.0))
}

fn excerpt(s: &str) -> String {
    let t: String = s.trim().chars().take(80).collect();
    format!("'{}'", t.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "UP 0 years, 2 days, 3 hours, 4 minutes, 5 seconds, 6 milliseconds, 7 microseconds\n\
FreeSWITCH (Version 1.10.12-release 64bit) is ready\n\
1234 session(s) since startup\n\
17 session(s) - peak 40, last 5min 21 \n\
2 session(s) per Sec out of max 30, peak 9, last 5min 3 \n\
1000 session(s) max\n\
min idle cpu 0.00/97.53\n\
Current Stack Size/Max 240K/8192K\n";

    #[test]
    fn status_plural() {
        let l = status_load(STATUS).unwrap();
        assert_eq!(l.sessions, 17);
        assert_eq!(l.max_sessions, Some(1000));
        assert_eq!(l.idle_cpu, Some(97.53));
    }

    #[test]
    fn status_singular_trailing_spaces_no_stack_line() {
        let body = "UP 1 year, 1 day, 1 hour, 1 minute, 1 second, 1 millisecond, 1 microsecond \n\
FreeSWITCH (Version 1.10.12-release 64bit) is ready \n\
1 session(s) since startup \n\
1 session - peak 1, last 5min 1 \n\
0 session per Sec out of max 30, peak 1, last 5min 0 \n\
250 sessions max \n\
min idle cpu 0.00/12.50 \n";
        let l = status_load(body).unwrap();
        assert_eq!(l.sessions, 1);
        assert_eq!(l.max_sessions, Some(250));
        assert_eq!(l.idle_cpu, Some(12.5));
        let crlf = STATUS.replace('\n', "\r\n");
        assert_eq!(status_load(&crlf).unwrap().sessions, 17);
    }

    #[test]
    fn status_garbage() {
        assert!(status_load("").is_err());
        assert!(status_load("-ERR status Command not found!").is_err());
        assert!(status_load("x session(s) - peak\nmin idle cpu nope").is_err());
        let l = status_load("5 session(s) - peak 7\n").unwrap();
        assert_eq!((l.sessions, l.max_sessions, l.idle_cpu), (5, None, None));
    }

    #[test]
    fn heartbeat() {
        let h = [
            ("Session-Count", "17"),
            ("Max-Sessions", "1000"),
            ("Idle-CPU", "97.533333"),
        ];
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
        };
        let l = heartbeat_load(get).unwrap();
        assert_eq!(l.sessions, 17);
        assert_eq!(l.max_sessions, Some(1000));
        assert!((l.idle_cpu.unwrap() - 97.533333).abs() < 1e-9);
        assert!(heartbeat_load(|_| None).is_err());
        assert!(heartbeat_load(|n| (n == "Session-Count").then_some("lots")).is_err());
        let l = heartbeat_load(|n| match n {
            "Session-Count" => Some("3"),
            "Max-Sessions" => Some("0"),
            "Idle-CPU" => Some("NaN"),
            _ => None,
        })
        .unwrap();
        assert_eq!((l.max_sessions, l.idle_cpu), (None, None));
    }

    #[test]
    fn counts() {
        assert_eq!(calls_count("\n17 total.\n").unwrap(), 17);
        assert_eq!(calls_count("0 total.").unwrap(), 0);
        assert!(calls_count("-ERR SQL disabled, no data available!").is_err());
        assert!(calls_count("").is_err());
        assert_eq!(
            fsctl_max_sessions("+OK max sessions: 1000\n").unwrap(),
            1000
        );
        assert!(fsctl_max_sessions("-ERR no").is_err());
    }

    pub(crate) const XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<profile>
  <registrations>
    <registration>
        <call-id>abc@10.0.0.1</call-id>
        <user>alice@voip.example.com</user>
        <contact>&quot;Alice &amp; Co&quot; &lt;sip:alice@24.64.1.7:5060;fs_nat=yes&gt;</contact>
        <agent>Yealink</agent>
        <status>Registered(UDP-NAT)(unknown) exp(2024-01-01 12:00:00) expsecs(300)</status>
        <ping-status>Reachable</ping-status>
        <ping-time>23.45</ping-time>
        <host>fs1</host>
        <network-ip>24.64.1.7</network-ip>
        <network-port>5060</network-port>
    </registration>
    <registration>
        <user>bob@voip.example.com</user>
        <contact>&lt;sip:bob@[2001:db8::7]:5060&gt;</contact>
        <ping-status>Reachable</ping-status>
        <ping-time>8.00</ping-time>
        <network-ip>2001:db8::7</network-ip>
    </registration>
    <registration>
        <user>carol@voip.example.com</user>
        <ping-status>Unreachable</ping-status>
        <ping-time>1999.99</ping-time>
        <network-ip>198.51.100.3</network-ip>
    </registration>
    <registration>
        <user>dave@voip.example.com</user>
        <ping-status>Reachable</ping-status>
        <ping-time/>
        <network-ip>198.51.100.4</network-ip>
    </registration>
  </registrations>
</profile>
"#;

    #[test]
    fn xmlstatus() {
        let r = xmlstatus_registrations(XML).unwrap();
        assert_eq!(r.unreachable, 1);
        assert_eq!(r.unusable, 1);
        assert_eq!(r.reachable.len(), 2);
        let a = &r.reachable[0];
        assert_eq!(a.ip, "24.64.1.7".parse::<IpAddr>().unwrap());
        assert_eq!(a.ping_ms, 23.45);
        assert_eq!(a.user, "alice@voip.example.com");
        assert_eq!(
            a.contact,
            "\"Alice & Co\" <sip:alice@24.64.1.7:5060;fs_nat=yes>"
        );
        let b = &r.reachable[1];
        assert_eq!(b.ip, "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(b.ping_ms, 8.0);
    }

    #[test]
    fn xmlstatus_empty_and_garbage() {
        let r =
            xmlstatus_registrations("<profile>\n<registrations>\n</registrations>\n</profile>\n")
                .unwrap();
        assert_eq!(r, Registrations::default());
        assert!(xmlstatus_registrations("Invalid Profile!").is_err());
        assert!(xmlstatus_registrations("").is_err());
        assert!(
            xmlstatus_registrations("<profile><registrations><registration><ping-status>Reachable")
                .is_err()
        );
        let cut = &XML[..XML.len() / 2];
        assert!(xmlstatus_registrations(cut).is_err());
        // Bytes that are not XML at all inside a registration: no panic.
        let odd = "<profile><registration><ping-status>Reachable</ping-status><ping-time>1e999</ping-time>\
                   <network-ip>[::1]</network-ip></registration><registration><network-ip>&#xZZ;\u{1F600}</network-ip>\
                   <ping-status>Reachable</ping-status><ping-time>-1</ping-time></registration></profile>";
        let r = xmlstatus_registrations(odd).unwrap();
        assert_eq!((r.reachable.len(), r.unusable), (0, 2));
    }

    #[test]
    fn unescapes() {
        assert_eq!(
            xml_unescape("a&lt;b&gt;&amp;&#65;&#x42;&bogus;&"),
            "a<b>&AB&bogus;&"
        );
        assert_eq!(xml_unescape("<![CDATA[<x>&amp;]]>y"), "<x>&amp;y");
    }

    fn hangup(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = [
            ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
            ("Call-Direction", "inbound"),
            ("Caller-Network-Addr", "198.51.100.7"),
            ("variable_sip_network_ip", "203.0.113.9"),
            ("variable_rtp_audio_in_mos", "4.21"),
            ("variable_rtp_audio_in_media_packet_count", "990"),
            ("variable_rtp_audio_in_flaw_total", "10"),
            ("variable_rtp_audio_in_jitter_max_variance", "7.50"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            h.retain(|(n, _)| n != k);
            if !v.is_empty() || *k == "Caller-Network-Addr" {
                h.push((k.to_string(), v.to_string()));
            }
        }
        h
    }

    fn quality_of(h: &[(String, String)]) -> Result<CallQuality, NoQuality> {
        hangup_quality(|n| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        })
    }

    #[test]
    fn a_hangup_with_media_gives_its_quality() {
        let q = quality_of(&hangup(&[])).unwrap();
        assert_eq!(q.client, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(q.mos, 4.21);
        assert!((q.loss_pct.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(q.jitter_ms, Some(7.5));
        // No Caller-Network-Addr: the SIP address; no flaws or jitter: unknown.
        let q = quality_of(&hangup(&[
            ("Caller-Network-Addr", ""),
            ("variable_rtp_audio_in_flaw_total", ""),
            ("variable_rtp_audio_in_jitter_max_variance", ""),
        ]))
        .unwrap();
        assert_eq!(q.client, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!((q.loss_pct, q.jitter_ms), (None, None));
        let q = quality_of(&hangup(&[("Caller-Network-Addr", "2001:db8::7")])).unwrap();
        assert!(q.client.is_ipv6());
        let q = quality_of(&hangup(&[("Caller-Network-Addr", "::ffff:198.51.100.9")])).unwrap();
        assert_eq!(q.client, "198.51.100.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn calls_without_media_or_not_inbound_and_hostile_ones_give_none() {
        assert_eq!(
            quality_of(&hangup(&[("Call-Direction", "outbound")])),
            Err(NoQuality::NotInbound)
        );
        assert_eq!(
            quality_of(&hangup(&[(
                "variable_rtp_audio_in_media_packet_count",
                "0"
            )])),
            Err(NoQuality::NoMedia)
        );
        assert_eq!(
            quality_of(&hangup(&[("variable_rtp_audio_in_media_packet_count", "")])),
            Err(NoQuality::NoMedia)
        );
        for (k, v, why) in [
            ("Call-Direction", "", "Call-Direction"),
            ("variable_rtp_audio_in_mos", "", "no rtp_audio_in_mos"),
            ("variable_rtp_audio_in_mos", "NaN", "not a MOS"),
            ("variable_rtp_audio_in_mos", "inf", "not a MOS"),
            ("variable_rtp_audio_in_mos", "4.51", "not a MOS"),
            ("variable_rtp_audio_in_mos", "0", "not a MOS"),
            ("variable_rtp_audio_in_mos", "four", "not a MOS"),
            (
                "variable_rtp_audio_in_media_packet_count",
                "-1",
                "whole number",
            ),
            (
                "variable_rtp_audio_in_media_packet_count",
                "1e3",
                "whole number",
            ),
            ("Caller-Network-Addr", "phone.example", "not an IP"),
            ("Caller-Network-Addr", "0.0.0.0", "not an IP"),
        ] {
            match quality_of(&hangup(&[(k, v)])) {
                Err(NoQuality::Bad(e)) => assert!(e.contains(why), "{k}={v}: {e}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        let mut h = hangup(&[("Caller-Network-Addr", "")]);
        h.retain(|(k, _)| k != "variable_sip_network_ip" && k != "Caller-Network-Addr");
        assert!(matches!(quality_of(&h), Err(NoQuality::Bad(e)) if e.contains("no Caller")));
        // Garbage jitter or flaws are left out, not the call.
        let q = quality_of(&hangup(&[
            ("variable_rtp_audio_in_jitter_max_variance", "-5"),
            ("variable_rtp_audio_in_flaw_total", "x"),
        ]))
        .unwrap();
        assert_eq!((q.loss_pct, q.jitter_ms), (None, None));
    }
}
