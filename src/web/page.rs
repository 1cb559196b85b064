//! The status page (`/`) an operator keeps open: [`Page`], what it shows,
//! and [`render`], a pure function from it to a complete HTML5 document
//! (inline CSS, inline SVG charts drawn here, no script, nothing fetched;
//! the browser reloads it every [`Page::refresh_s`]). Every string that
//! comes from the site, the store or the events is HTML-escaped.

use std::fmt::Write as _;

use crate::clock::age as ago;

/// A node's health as the page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
    Overloaded,
    /// No fresh health (never probed, no probe, or stale).
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Overloaded => "overloaded",
            State::Unknown => "unknown",
        }
    }
}

/// One node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub host: String,
    pub health: State,
    /// Since when the stored health is what it is (unix s).
    pub health_since: Option<i64>,
    /// Age of the health figure, s.
    pub health_age_s: Option<i64>,
    /// The last probe round trip, ms.
    pub probe_rtt_ms: Option<f64>,
    /// What the last SIP probe found, in words (shown for a down node:
    /// why it fails). From the collector's last probe while it is fresh.
    pub probe_detail: Option<String>,
    /// A `tls:` probe: when the server's certificate expires (unix s).
    pub cert_not_after: Option<i64>,
    /// It expires within `CERT_WARN_DAYS` days, or has.
    pub cert_expiring: bool,
    /// Client networks with fresh call quality at the fine level, and all
    /// the node's call quality entries.
    pub quality_networks: i64,
    pub quality_entries: i64,
    pub sessions: Option<u32>,
    /// The session limit (the site's, else FreeSWITCH's).
    pub max_sessions: Option<u32>,
    /// Age of the load figures, s.
    pub load_age_s: Option<i64>,
    /// Drained by the operator since (unix s).
    pub drained_since: Option<i64>,
    /// The last hour, oldest first, one point per step (None: a gap):
    /// sessions over the limit, and the probe round trip in ms.
    pub load_series: Vec<Option<f32>>,
    pub rtt_series: Vec<Option<f32>>,
}

impl NodeRow {
    /// Sessions over the limit, if both are known and the limit is not 0.
    pub fn load_fraction(&self) -> Option<f64> {
        match (self.sessions, self.max_sessions) {
            (Some(s), Some(m)) if m > 0 => Some(f64::from(s) / f64::from(m)),
            _ => None,
        }
    }
}

/// How many nodes' TLS certificates expire soon (or have).
fn certs_expiring(p: &Page) -> usize {
    p.nodes.iter().filter(|n| n.cert_expiring).count()
}

/// `cert until 2027-01-02, 36 days`, or `cert expired 2026-11-20, 7 days
/// ago`: a certificate's end seen at `now`.
pub fn cert_text(not_after: i64, now: i64) -> String {
    let date = &crate::clock::utc(not_after)[..10];
    let days = (not_after - now).div_euclid(86_400);
    let unit = |d: i64| if d == 1 { "day" } else { "days" };
    if not_after <= now {
        let d = (now - not_after) / 86_400;
        format!("cert expired {date}, {d} {} ago", unit(d))
    } else {
        format!("cert until {date}, {days} {}", unit(days))
    }
}

/// One entry of the state-change log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub at: i64,
    pub kind: String,
    pub node: Option<String>,
    pub detail: String,
}

/// Where a service sends a client network now.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    /// The first node of the answer; None: no node at all.
    pub node: Option<String>,
    /// Every node was down or drained: all of them are answered.
    pub failed_open: bool,
}

/// One of the busiest client networks.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkRow {
    pub prefix: String,
    pub queries: i64,
    pub last_seen_age_s: i64,
    /// Per service of [`Page::services`], in that order.
    pub routed: Vec<Routed>,
}

/// Everything the page shows, gathered at `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Unix seconds the data was gathered at.
    pub now: i64,
    /// The browser reloads the page every this many seconds.
    pub refresh_s: u32,
    pub generation: i64,
    /// Seconds since the collector last wrote; None: never.
    pub collector_age_s: Option<i64>,
    /// Health older than this counts as unknown (for the age column).
    pub health_max_age_s: i64,
    /// Load older than this counts as unknown.
    pub load_max_age_s: i64,
    pub nodes: Vec<NodeRow>,
    /// Newest first.
    pub events: Vec<EventRow>,
    /// The service names of the network table's columns.
    pub services: Vec<String>,
    pub networks: Vec<NetworkRow>,
    /// Seconds covered by the charts (the series' length × step).
    pub history_span_s: i64,
    /// Something the operator must know (the database cannot be read, ...).
    pub problems: Vec<String>,
}

/// Escapes text for HTML content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (but tab and newline) have no place in a
            // page: shown as the replacement character.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// `HH:MM:SS` (UTC) of a unix time.
pub fn clock(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// When something happened, for a list read now: the time (UTC) if within
/// a day, else the date.
fn when(at: i64, now: i64) -> String {
    let full = crate::clock::utc(at);
    if (now - at).abs() < 86_400 {
        clock(at)
    } else {
        full[..10].to_string()
    }
}

const CSS: &str = r#"
:root{color-scheme:light dark;--bg:#f5f6f8;--card:#fff;--fg:#1d232b;--mute:#68717d;--line:#dde1e6;
--up:#1f9d55;--up-bg:#e3f5ea;--over:#c77c02;--over-bg:#fdf1dc;--down:#d3343c;--down-bg:#fbe4e5;
--drain:#7b828b;--drain-bg:#eceef0;--unk:#5d6b7e;--unk-bg:#e8ecf1;--bar:#e6e9ed;--grid:#eef0f3;--rtt:#3b6fd8}
@media (prefers-color-scheme:dark){:root{--bg:#14171b;--card:#1c2026;--fg:#e3e7ec;--mute:#939ca7;--line:#2e343c;
--up:#3ecf7a;--up-bg:#173526;--over:#f0a93a;--over-bg:#3a2c12;--down:#f0626a;--down-bg:#3d1d20;
--drain:#9aa1a9;--drain-bg:#2a2e33;--unk:#9aa8ba;--unk-bg:#262c34;--bar:#2b3038;--grid:#252a31;--rtt:#7aa2f7}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 18px;padding:10px 18px;background:var(--card);border-bottom:1px solid var(--line)}
header h1{font-size:16px;margin:0;font-weight:650}
header .meta{color:var(--mute)}
.counts{display:flex;gap:6px;margin-left:auto}
main{padding:12px 18px;display:grid;gap:12px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
h2{font-size:12px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.06em;color:var(--mute);font-weight:600}
table{border-collapse:collapse;width:100%}
th{text-align:left;vertical-align:bottom;font-weight:600;color:var(--mute);font-size:11.5px;padding:3px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:middle}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mute{color:var(--mute)}
.small{font-size:11.5px}
.name{font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap}
.s-up{color:var(--up);background:var(--up-bg)}
.s-overloaded{color:var(--over);background:var(--over-bg)}
.s-down{color:var(--down);background:var(--down-bg)}
.s-unknown{color:var(--unk);background:var(--unk-bg)}
.s-drained{color:var(--drain);background:var(--drain-bg)}
tr.node{border-left:4px solid transparent}
tr.node td:first-child{border-left:4px solid var(--st)}
tr.h-up{--st:var(--up)} tr.h-overloaded{--st:var(--over)} tr.h-down{--st:var(--down)} tr.h-unknown{--st:var(--unk)}
tr.d-yes{--st:var(--drain)} tr.d-yes td{color:var(--mute)}
.bar{display:inline-block;width:120px;height:8px;border-radius:4px;background:var(--bar);vertical-align:middle;overflow:hidden;margin-right:6px}
.bar i{display:block;height:100%;border-radius:4px}
.l-ok{background:var(--up)} .l-high{background:var(--over)} .l-full{background:var(--down)}
.stale{color:var(--down);font-weight:600}
td.load,.since{white-space:nowrap}
.warn{color:var(--over);font-weight:600}
.reason{color:var(--down);overflow-wrap:anywhere}
.reason::before{content:"why: ";color:var(--mute);font-weight:600}
tr.why td{padding-top:0}
tr.why td:first-child{border-left:4px solid var(--st)}
tr.node:has(+ tr.why) td{border-bottom:0}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.chart{border:1px solid var(--line);border-radius:6px;padding:6px 8px 2px}
.chart .title{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.chart svg{display:block;width:100%;height:auto}
svg text{font:10px system-ui,sans-serif;fill:var(--mute)}
svg .axis{stroke:var(--line);stroke-width:1}
svg .grid{stroke:var(--grid);stroke-width:1}
svg .load{fill:none;stroke:var(--up);stroke-width:1.5;stroke-linejoin:round}
svg .rtt{fill:none;stroke:var(--rtt);stroke-width:1.5;stroke-linejoin:round}
svg circle.load{fill:var(--up);stroke:none} svg circle.rtt{fill:var(--rtt);stroke:none}
ol.events{list-style:none;margin:0;padding:0}
ol.events li{display:grid;grid-template-columns:58px 120px minmax(0,1fr);gap:8px;padding:4px 0;border-bottom:1px solid var(--line);align-items:baseline}
ol.events li:last-child{border-bottom:0}
.kind{font-size:11px;font-weight:600;color:var(--mute);text-transform:lowercase}
.ev-down .kind{color:var(--down)} .ev-up .kind{color:var(--up)} .ev-over .kind{color:var(--over)} .ev-drain .kind{color:var(--drain)}
.detail,.who{overflow-wrap:anywhere;min-width:0}
.problem{background:var(--down-bg);color:var(--down);border-color:var(--down);font-weight:600}
.empty{color:var(--mute);padding:6px 0}
th.svc{white-space:normal}
#networks{overflow-x:auto}
.key{display:inline-block;width:14px;height:3px;border-radius:2px;vertical-align:middle;margin:0 4px 0 6px}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace}
"#;

/// The complete HTML document of the status page.
pub fn render(p: &Page) -> String {
    let mut o = String::with_capacity(16 * 1024 + p.nodes.len() * 12 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        p.refresh_s,
        title(p)
    );
    header(&mut o, p);
    o.push_str("<main>\n");
    for problem in &p.problems {
        o.push_str("<section class=\"problem\">");
        escape_into(&mut o, problem);
        o.push_str("</section>\n");
    }
    nodes(&mut o, p);
    charts(&mut o, p);
    o.push_str("<div class=\"cols\">\n");
    events(&mut o, p);
    networks(&mut o, p);
    o.push_str("</div>\n</main>\n</body>\n</html>\n");
    o
}

/// The tab's title: what needs attention first (`pdns-ha: 1 down, 1
/// overloaded`), else how many nodes are up.
fn title(p: &Page) -> String {
    let count = |st: State| {
        p.nodes
            .iter()
            .filter(|n| n.health == st && n.drained_since.is_none())
            .count()
    };
    let mut parts = Vec::new();
    for st in [State::Down, State::Overloaded, State::Unknown] {
        match count(st) {
            0 => {}
            n => parts.push(format!("{n} {}", st.as_str())),
        }
    }
    let healthy = parts.is_empty();
    match certs_expiring(p) {
        0 => {}
        1 => parts.push("1 cert expiring".into()),
        n => parts.push(format!("{n} certs expiring")),
    }
    if healthy {
        parts.push(format!("{} up", count(State::Up)));
    }
    if p.collector_age_s.is_none_or(|a| a > 15) {
        parts.insert(0, "collector silent".into());
    }
    format!("pdns-ha: {}", parts.join(", "))
}

fn header(o: &mut String, p: &Page) {
    let collector = match p.collector_age_s {
        None => "<span class=\"stale\">collector never seen</span>".to_string(),
        Some(a) if a > 15 => format!(
            "<span class=\"stale\">collector last seen {} ago</span>",
            ago(a)
        ),
        Some(a) => format!("collector last seen {} ago", ago(a)),
    };
    let _ = write!(
        o,
        "<header>\n<h1>pdns-ha</h1>\n<span class=\"meta\" id=\"collector\">{collector}</span>\n\
         <span class=\"meta\">site generation {}</span>\n\
         <span class=\"meta\">{} UTC · reloads every {} s · read-only</span>\n<span class=\"counts\">",
        p.generation,
        clock(p.now),
        p.refresh_s
    );
    for st in [State::Up, State::Overloaded, State::Down, State::Unknown] {
        let n = p
            .nodes
            .iter()
            .filter(|n| n.health == st && n.drained_since.is_none())
            .count();
        if n > 0 || st == State::Up {
            let _ = write!(
                o,
                "<span class=\"pill s-{0}\" data-count=\"{0}\">{n} {0}</span>",
                st.as_str()
            );
        }
    }
    let drained = p.nodes.iter().filter(|n| n.drained_since.is_some()).count();
    if drained > 0 {
        let _ = write!(
            o,
            "<span class=\"pill s-drained\" data-count=\"drained\">{drained} drained</span>"
        );
    }
    match certs_expiring(p) {
        0 => {}
        n => {
            let _ = write!(
                o,
                "<span class=\"pill s-overloaded\" data-count=\"cert\" title=\"TLS certificates of SIP probes that expire within {} days, or have\">{n} cert{} expiring</span>",
                crate::collector::tls::CERT_WARN_DAYS,
                if n == 1 { "" } else { "s" }
            );
        }
    }
    o.push_str("</span>\n</header>\n");
}

fn age_cell(o: &mut String, age: Option<i64>, max: i64) {
    match age {
        None => o.push_str("<span class=\"mute\">–</span>"),
        Some(a) if a > max => {
            let _ = write!(o, "<span class=\"stale\">{}</span>", ago(a));
        }
        Some(a) => o.push_str(&ago(a)),
    }
}

fn nodes(o: &mut String, p: &Page) {
    o.push_str(
        "<section id=\"nodes\">\n<h2>Nodes</h2>\n<table>\n<thead><tr><th>node</th><th>health</th>\
         <th class=\"num\">probe RTT</th><th>load</th><th class=\"num\">sessions</th>\
         <th class=\"num\" title=\"client networks with fresh call quality (/24, /48) / all call quality entries\">call quality nets</th>\
         <th>drained</th><th class=\"num\">data age (health / load)</th></tr></thead>\n<tbody>\n",
    );
    if p.nodes.is_empty() {
        o.push_str("<tr><td colspan=\"8\" class=\"empty\">no nodes: run <code>pdns-ha apply</code></td></tr>\n");
    }
    for n in &p.nodes {
        let h = n.health.as_str();
        let drained = if n.drained_since.is_some() {
            "yes"
        } else {
            "no"
        };
        o.push_str("<tr class=\"node h-");
        o.push_str(h);
        o.push_str(" d-");
        o.push_str(drained);
        o.push_str("\" data-node=\"");
        escape_into(o, &n.name);
        let cert = match n.cert_not_after {
            None => "none",
            Some(_) if n.cert_expiring => "expiring",
            Some(_) => "ok",
        };
        let _ = write!(
            o,
            "\" data-health=\"{h}\" data-drained=\"{drained}\" data-cert=\"{cert}\">\n<td><div class=\"name\">"
        );
        escape_into(o, &n.name);
        o.push_str("</div><div class=\"mute small\">");
        escape_into(o, &n.host);
        let _ = write!(o, "</div></td>\n<td><span class=\"pill s-{h}\">{h}</span>");
        if let Some(since) = n.health_since {
            let _ = write!(
                o,
                " <span class=\"mute small since\">since {} ({})</span>",
                when(since, p.now),
                ago(p.now - since)
            );
        }
        o.push_str("</td>\n<td class=\"num\">");
        match n.probe_rtt_ms {
            Some(r) => {
                let _ = write!(o, "{r:.1} ms");
            }
            None => o.push_str("<span class=\"mute\">–</span>"),
        }
        if let Some(at) = n.cert_not_after {
            let _ = write!(
                o,
                "<div class=\"cert small {}\" title=\"the TLS certificate the SIP probe was shown expires {}\">{}</div>",
                if n.cert_expiring { "warn" } else { "mute" },
                crate::clock::utc(at),
                cert_text(at, p.now)
            );
        }
        o.push_str("</td>\n<td class=\"load\">");
        match n.load_fraction() {
            Some(f) => {
                let pct = f * 100.0;
                let class = if f >= 0.9 {
                    "l-full"
                } else if f >= 0.7 {
                    "l-high"
                } else {
                    "l-ok"
                };
                let _ = write!(
                    o,
                    "<span class=\"bar\" title=\"{pct:.0} % of capacity\"><i class=\"{class}\" style=\"width:{:.1}%\"></i></span>{pct:.0} %",
                    pct.clamp(0.0, 100.0)
                );
            }
            None => o.push_str("<span class=\"mute\">no load</span>"),
        }
        o.push_str("</td>\n<td class=\"num\">");
        match (n.sessions, n.max_sessions) {
            (None, None) => o.push_str("<span class=\"mute\">–</span>"),
            (s, m) => {
                let f = |v: Option<u32>| v.map_or("–".to_string(), |v| v.to_string());
                let _ = write!(o, "{} <span class=\"mute\">/ {}</span>", f(s), f(m));
            }
        }
        o.push_str("</td>\n<td class=\"num quality\">");
        if n.quality_entries == 0 {
            o.push_str("<span class=\"mute\">–</span>");
        } else {
            let _ = write!(
                o,
                "{} <span class=\"mute\">/ {}</span>",
                n.quality_networks, n.quality_entries
            );
        }
        o.push_str("</td>\n<td>");
        match n.drained_since {
            Some(since) => {
                let _ = write!(
                    o,
                    "<span class=\"pill s-drained\">drained</span> <span class=\"mute small\">since {} ({})</span>",
                    when(since, p.now),
                    ago(p.now - since)
                );
            }
            None => o.push_str("<span class=\"mute\">no</span>"),
        }
        o.push_str("</td>\n<td class=\"num\">");
        age_cell(o, n.health_age_s, p.health_max_age_s);
        o.push_str(" <span class=\"mute\">/</span> ");
        age_cell(o, n.load_age_s, p.load_max_age_s);
        o.push_str("</td>\n</tr>\n");
        // Why a down node is down: the last probe's reason, on a line of
        // its own under the node's cells.
        if n.health == State::Down
            && let Some(d) = &n.probe_detail
        {
            let _ = write!(o, "<tr class=\"why h-{h} d-{drained}\" data-why=\"");
            escape_into(o, &n.name);
            o.push_str("\"><td></td><td colspan=\"7\"><div class=\"reason small\">");
            escape_into(o, d);
            o.push_str("</div></td></tr>\n");
        }
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

fn charts(o: &mut String, p: &Page) {
    let _ = write!(
        o,
        "<section id=\"history\">\n<h2>Last {} min · <span class=\"key\" style=\"background:var(--up)\"></span>load <span class=\"key\" style=\"background:var(--rtt)\"></span>probe RTT</h2>\n<div class=\"charts\">\n",
        p.history_span_s / 60
    );
    for n in &p.nodes {
        let h = n.health.as_str();
        o.push_str("<div class=\"chart\" data-node=\"");
        escape_into(o, &n.name);
        o.push_str("\"><div class=\"title\"><span class=\"name\">");
        escape_into(o, &n.name);
        let drained = if n.drained_since.is_some() {
            "<span class=\"pill s-drained\">drained</span> "
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "</span><span>{drained}<span class=\"pill s-{h}\">{h}</span></span></div>"
        );
        chart_svg(o, p, n);
        o.push_str("</div>\n");
    }
    if p.nodes.is_empty() {
        o.push_str("<div class=\"empty\">no nodes</div>\n");
    }
    o.push_str("</div>\n</section>\n");
}

/// A round upper bound for a scale: 1, 2, 2.5 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p * 1.000_001 {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_num(v: f64) -> String {
    if v >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Chart geometry: the plot area's x from `X0` to `X1`, two panels.
const W: f64 = 320.0;
const X0: f64 = 40.0;
const X1: f64 = 312.0;

/// One panel of a chart: the axis labels, a grid line, and the series as
/// polylines (a gap breaks the line; a lone point is a dot).
#[allow(clippy::too_many_arguments)]
fn panel(
    o: &mut String,
    series: &[Option<f32>],
    scale: f64,
    (y0, y1): (f64, f64),
    unit: &str,
    class: &str,
    label: &str,
) {
    let (mut lo, mut hi, mut last) = (f64::INFINITY, f64::NEG_INFINITY, None);
    for v in series.iter().flatten() {
        let v = f64::from(*v) * scale;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if let Some(v) = series.iter().rev().flatten().next() {
        last = Some(f64::from(*v) * scale);
    }
    let top = if class == "load" {
        nice_ceiling(hi.max(100.0))
    } else {
        nice_ceiling(hi)
    };
    // Axis labels: the scale's min and max.
    let _ = write!(
        o,
        "<line class=\"grid\" x1=\"{X0}\" y1=\"{y0}\" x2=\"{X1}\" y2=\"{y0}\"/>\
         <line class=\"grid\" x1=\"{X0}\" y1=\"{ym}\" x2=\"{X1}\" y2=\"{ym}\"/>\
         <line class=\"axis\" x1=\"{X0}\" y1=\"{y1}\" x2=\"{X1}\" y2=\"{y1}\"/>\
         <line class=\"axis\" x1=\"{X0}\" y1=\"{y0}\" x2=\"{X0}\" y2=\"{y1}\"/>\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{t}</text>\
         <text x=\"{lx}\" y=\"{by}\" text-anchor=\"end\">0</text>",
        ym = (y0 + y1) / 2.0,
        lx = X0 - 4.0,
        ty = y0 + 3.5,
        t = fmt_num(top),
        by = y1 + 3.5,
    );
    // The panel's title: what it is, the latest value, and the range seen.
    let _ = write!(o, "<text x=\"{X0}\" y=\"{}\">{label}", y0 - 5.0);
    match last {
        Some(l) => {
            let _ = write!(
                o,
                " {} {unit} · min {} max {}",
                fmt_num(l),
                fmt_num(lo),
                fmt_num(hi)
            );
        }
        None => o.push_str(" · no data"),
    }
    o.push_str("</text>");
    let n = series.len().max(2);
    let x = |i: usize| X0 + (X1 - X0) * i as f64 / (n - 1) as f64;
    let y = |v: f64| y1 - (y1 - y0) * (v / top).clamp(0.0, 1.0);
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |o: &mut String, run: &mut Vec<(f64, f64)>| {
        match run.len() {
            0 => {}
            1 => {
                let _ = write!(
                    o,
                    "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\"/>",
                    run[0].0, run[0].1
                );
            }
            _ => {
                let _ = write!(o, "<polyline class=\"{class}\" points=\"");
                for (i, (px, py)) in run.iter().enumerate() {
                    if i > 0 {
                        o.push(' ');
                    }
                    let _ = write!(o, "{px:.1},{py:.1}");
                }
                o.push_str("\"/>");
            }
        }
        run.clear();
    };
    for (i, v) in series.iter().enumerate() {
        match v {
            Some(v) => run.push((x(i), y(f64::from(*v) * scale))),
            None => flush(o, &mut run),
        }
    }
    flush(o, &mut run);
}

fn chart_svg(o: &mut String, p: &Page, n: &NodeRow) {
    const H: f64 = 142.0;
    let _ = write!(
        o,
        "<svg class=\"history\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"load and probe RTT of "
    );
    escape_into(o, &n.name);
    o.push_str(" over the last hour\">");
    panel(o, &n.load_series, 100.0, (16.0, 58.0), "%", "load", "load");
    panel(
        o,
        &n.rtt_series,
        1.0,
        (81.0, 123.0),
        "ms",
        "rtt",
        "probe RTT",
    );
    let _ = writeln!(
        o,
        "<text x=\"{X0}\" y=\"138\">\u{2212}{} min</text><text x=\"{xm}\" y=\"138\" text-anchor=\"middle\">\u{2212}{} min</text><text x=\"{X1}\" y=\"138\" text-anchor=\"end\">now</text></svg>",
        p.history_span_s / 60,
        p.history_span_s / 120,
        xm = (X0 + X1) / 2.0,
    );
}

fn event_class(kind: &str, detail: &str) -> &'static str {
    let k = kind.to_ascii_lowercase();
    let d = detail.to_ascii_lowercase();
    let to = d.rsplit("->").next().unwrap_or(&d);
    if k.contains("drain") {
        "ev-drain"
    } else if k.contains("down") || to.trim_start().starts_with("down") {
        "ev-down"
    } else if k.contains("overload") || to.trim_start().starts_with("overloaded") {
        "ev-over"
    } else if k.contains("up") || to.trim_start().starts_with("up") {
        "ev-up"
    } else {
        ""
    }
}

fn events(o: &mut String, p: &Page) {
    o.push_str("<section id=\"events\">\n<h2>Recent state changes</h2>\n<ol class=\"events\">\n");
    if p.events.is_empty() {
        o.push_str("<li class=\"empty\">no state changes recorded</li>\n");
    }
    for e in &p.events {
        let _ = write!(
            o,
            "<li class=\"event {}\" data-kind=\"",
            event_class(&e.kind, &e.detail)
        );
        escape_into(o, &e.kind);
        o.push_str("\" data-node=\"");
        escape_into(o, e.node.as_deref().unwrap_or(""));
        let _ = write!(
            o,
            "\"><span class=\"mute small\" title=\"{} ({} ago)\">{}</span><span class=\"who\"><span class=\"kind\">",
            crate::clock::utc(e.at),
            ago(p.now - e.at),
            when(e.at, p.now)
        );
        escape_into(o, &e.kind);
        o.push_str("</span>");
        if let Some(node) = &e.node {
            o.push_str(" <span class=\"name\">");
            escape_into(o, node);
            o.push_str("</span>");
        }
        o.push_str("</span><span class=\"detail\">");
        escape_into(o, &e.detail);
        o.push_str("</span></li>\n");
    }
    o.push_str("</ol>\n</section>\n");
}

fn networks(o: &mut String, p: &Page) {
    o.push_str("<section id=\"networks\">\n<h2>Busiest client networks · where each service sends them now</h2>\n<table>\n<thead><tr><th>network</th><th class=\"num\">queries</th><th class=\"num\">last seen</th>");
    for s in &p.services {
        o.push_str("<th class=\"svc\">");
        // A long name breaks at its dots, not inside a label.
        for (i, label) in s.split('.').enumerate() {
            if i > 0 {
                o.push_str(".<wbr>");
            }
            escape_into(o, label);
        }
        o.push_str("</th>");
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    if p.networks.is_empty() {
        let _ = writeln!(
            o,
            "<tr><td colspan=\"{}\" class=\"empty\">no client networks seen yet</td></tr>",
            3 + p.services.len()
        );
    }
    for net in &p.networks {
        o.push_str("<tr class=\"network\" data-network=\"");
        escape_into(o, &net.prefix);
        o.push_str("\"><td><code>");
        escape_into(o, &net.prefix);
        let _ = write!(
            o,
            "</code></td><td class=\"num\">{}</td><td class=\"num\">{} ago</td>",
            net.queries,
            ago(net.last_seen_age_s)
        );
        for r in &net.routed {
            o.push_str("<td class=\"routed\">");
            match &r.node {
                Some(name) => {
                    let st = p
                        .nodes
                        .iter()
                        .find(|n| &n.name == name)
                        .map_or("unknown", |n| {
                            if n.drained_since.is_some() {
                                "drained"
                            } else {
                                n.health.as_str()
                            }
                        });
                    let _ = write!(o, "<span class=\"pill s-{st}\" data-node=\"");
                    escape_into(o, name);
                    o.push_str("\">");
                    escape_into(o, name);
                    o.push_str("</span>");
                }
                None => o.push_str("<span class=\"mute\">none</span>"),
            }
            if r.failed_open {
                o.push_str(" <span class=\"stale small\">fail open</span>");
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, health: State) -> NodeRow {
        NodeRow {
            name: name.into(),
            host: format!("{name}.voip.example.com"),
            health,
            health_since: Some(1_000),
            health_age_s: Some(2),
            probe_rtt_ms: Some(1.25),
            sessions: Some(410),
            max_sessions: Some(1000),
            load_age_s: Some(4),
            probe_detail: Some("SIP probe: udp:192.0.2.1:5060 answered 200".into()),
            cert_not_after: None,
            cert_expiring: false,
            quality_networks: 0,
            quality_entries: 0,
            drained_since: None,
            load_series: vec![Some(0.2), Some(0.3), None, Some(0.5)],
            rtt_series: vec![None, Some(1.0), Some(2.0), Some(1.5)],
        }
    }

    fn page() -> Page {
        Page {
            now: 1_800,
            refresh_s: 10,
            generation: 7,
            collector_age_s: Some(1),
            health_max_age_s: 60,
            load_max_age_s: 90,
            nodes: vec![node("a", State::Up), node("b", State::Down)],
            events: vec![EventRow {
                at: 1_700,
                kind: "health".into(),
                node: Some("b".into()),
                detail: "up -> down".into(),
            }],
            services: vec!["_sip._udp.voip.example.com".into()],
            networks: vec![NetworkRow {
                prefix: "198.51.100.0/24".into(),
                queries: 1234,
                last_seen_age_s: 3,
                routed: vec![Routed {
                    node: Some("a".into()),
                    failed_open: false,
                }],
            }],
            history_span_s: 3600,
            problems: vec![],
        }
    }

    #[test]
    fn a_complete_document_that_reloads_itself_and_fetches_nothing() {
        let html = render(&page());
        assert!(html.starts_with("<!DOCTYPE html>\n<html"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<title>pdns-ha: 1 down</title>"), "{html}");
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("src="));
    }

    #[test]
    fn nodes_have_stable_hooks() {
        let mut p = page();
        p.nodes[1].drained_since = Some(1_500);
        let html = render(&p);
        assert!(html.contains(
            "<tr class=\"node h-up d-no\" data-node=\"a\" data-health=\"up\" data-drained=\"no\" data-cert=\"none\">"
        ));
        assert!(html.contains(
            "data-node=\"b\" data-health=\"down\" data-drained=\"yes\" data-cert=\"none\">"
        ));
        assert!(html.contains("since 00:16:40 (13 min)"), "{html}");
        assert!(html.contains("1.2 ms") || html.contains("1.3 ms"));
        assert!(html.contains("41 %"));
        assert!(html.contains("410 <span class=\"mute\">/ 1000</span>"));
        assert_eq!(html.matches("<svg class=\"history\"").count(), 2);
        assert_eq!(html.matches("<li class=\"event").count(), 1);
        assert!(html.contains("data-network=\"198.51.100.0/24\""));
    }

    #[test]
    fn every_string_from_outside_is_escaped() {
        let evil = "<script>alert(\"x\")</script> & 'q' é ✓";
        let mut p = page();
        p.nodes[0].name = evil.into();
        p.nodes[0].host = evil.into();
        p.events[0].kind = evil.into();
        p.events[0].node = Some(evil.into());
        p.events[0].detail = format!("{evil}\u{7}");
        p.services[0] = evil.into();
        p.networks[0].prefix = evil.into();
        p.networks[0].routed[0].node = Some(evil.into());
        p.problems = vec![evil.into()];
        p.nodes[1].probe_detail = Some(format!("{evil}\u{7}"));
        let html = render(&p);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("\"x\""));
        assert!(!html.contains("'q'"));
        assert!(!html.contains('\u{7}'));
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; é ✓";
        // Name (table, chart, aria label, route), host, kind, node, detail,
        // service, prefix, problem, probe reason: each escaped, none raw.
        assert!(html.matches(escaped).count() >= 11, "{html}");
        assert!(html.contains(&format!("data-node=\"{escaped}\"")));
    }

    #[test]
    fn a_down_node_says_why_and_certificates_about_to_expire_are_flagged() {
        let mut p = page();
        let day = 86_400;
        // a: a TLS probe whose certificate ends in 5 days; b: down, its
        // probe's reason hostile text.
        p.nodes[0].cert_not_after = Some(p.now + 5 * day + 60);
        p.nodes[0].cert_expiring = true;
        p.nodes[0].quality_networks = 3;
        p.nodes[0].quality_entries = 11;
        p.nodes[1].probe_detail = Some("TLS handshake failed: <b>unknown CA</b> & \"x\"".into());
        let html = render(&p);
        assert!(
            html.contains("<title>pdns-ha: 1 down, 1 cert expiring</title>"),
            "{html}"
        );
        assert!(html.contains("data-count=\"cert\""));
        assert!(html.contains(">1 cert expiring</span>"));
        assert!(
            html.contains("data-drained=\"no\" data-cert=\"expiring\">"),
            "{html}"
        );
        assert!(html.contains("data-cert=\"none\">"));
        assert!(html.contains("<div class=\"cert small warn\""), "{html}");
        assert!(
            html.contains(">cert until 1970-01-06, 5 days</div>"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"why h-down d-no\" data-why=\"b\"><td></td><td colspan=\"7\"><div class=\"reason small\">TLS handshake failed: &lt;b&gt;unknown CA&lt;/b&gt; &amp; &quot;x&quot;</div></td></tr>"),
            "{html}"
        );
        // An up node's last probe (it answered) is not a reason to show.
        assert_eq!(html.matches("class=\"reason").count(), 1);
        assert!(html.contains("<td class=\"num quality\">3 <span class=\"mute\">/ 11</span>"));
        assert!(html.contains("<td class=\"num quality\"><span class=\"mute\">–</span>"));
        // Far from its end: no warning anywhere.
        p.nodes[0].cert_not_after = Some(p.now + 36 * day + 5);
        p.nodes[0].cert_expiring = false;
        p.nodes[1].health = State::Up;
        let html = render(&p);
        assert!(html.contains("<title>pdns-ha: 2 up</title>"), "{html}");
        assert!(!html.contains("data-count=\"cert\""));
        assert!(html.contains("<div class=\"cert small mute\""));
        assert!(
            html.contains(">cert until 1970-02-06, 36 days</div>"),
            "{html}"
        );
        // Two, one of them expired.
        p.nodes[0].cert_expiring = true;
        p.nodes[1].cert_not_after = Some(p.now - 2 * day);
        p.nodes[1].cert_expiring = true;
        let html = render(&p);
        assert!(
            html.contains("<title>pdns-ha: 2 certs expiring, 2 up</title>"),
            "{html}"
        );
        assert!(html.contains(">2 certs expiring</span>"));
        assert!(
            html.contains(">cert expired 1969-12-30, 2 days ago</div>"),
            "{html}"
        );
        assert_eq!(
            cert_text(p.now + day, p.now),
            "cert until 1970-01-02, 1 day"
        );
        assert_eq!(
            cert_text(p.now + day - 1, p.now),
            "cert until 1970-01-02, 0 days"
        );
    }

    #[test]
    fn charts_break_at_gaps_and_label_their_scales() {
        let mut o = String::new();
        panel(
            &mut o,
            &[
                Some(1.0),
                Some(2.0),
                None,
                Some(3.0),
                None,
                Some(4.0),
                Some(8.0),
            ],
            1.0,
            (0.0, 50.0),
            "ms",
            "rtt",
            "RTT",
        );
        assert_eq!(o.matches("<polyline").count(), 2, "{o}");
        assert_eq!(o.matches("<circle").count(), 1, "{o}");
        assert!(o.contains(">10</text>"), "the scale's max: {o}");
        assert!(o.contains(">0</text>"));
        assert!(o.contains("RTT 8 ms · min 1 max 8"), "{o}");
        let mut o = String::new();
        panel(
            &mut o,
            &[None, None],
            100.0,
            (0.0, 50.0),
            "%",
            "load",
            "load",
        );
        assert!(o.contains("load · no data"));
        assert!(o.contains(">100</text>"));
        assert!(!o.contains("<polyline"));
        let html = render(&page());
        assert!(html.contains(">\u{2212}60 min</text>"));
        assert!(html.contains(">now</text>"));
    }

    #[test]
    fn times_and_scales() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(86_399), "23:59:59");
        assert_eq!(clock(1_764_263_000), "17:03:20");
        assert_eq!(when(1_764_263_000, 1_764_263_100), "17:03:20");
        assert_eq!(when(1_764_263_000, 1_764_263_000 + 86_400), "2025-11-27");
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(23.0), 25.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
    }
}
