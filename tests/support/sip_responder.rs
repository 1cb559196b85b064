//! A tiny UDP SIP responder for tests and the fake fleet: answers every
//! OPTIONS with a fixed status, copying Via, From, To, Call-ID and CSeq as a
//! stateless UAS does. Listens on 127.0.0.1, port 0; stopped on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct SipResponder {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Microseconds to wait before answering (a far or busy server).
    delay_us: Arc<AtomicU64>,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl SipResponder {
    pub fn start(status: u16) -> SipResponder {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind SIP responder");
        let addr = sock.local_addr().expect("responder address");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let status = Arc::new(AtomicU16::new(status));
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let delay_us = Arc::new(AtomicU64::new(0));
        let (st, dl, an, sp) = (
            status.clone(),
            delay_us.clone(),
            answered.clone(),
            stop.clone(),
        );
        let handle = std::thread::spawn(move || serve(sock, st, dl, an, sp));
        SipResponder {
            addr,
            status,
            delay_us,
            answered,
            stop,
            handle: Some(handle),
        }
    }

    /// `udp:127.0.0.1:PORT`
    pub fn probe_spec(&self) -> String {
        format!("udp:{}", self.addr)
    }

    /// Changes the status code answered from now on; 0 = stay silent.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Waits this long before each answer from now on (a probe round trip
    /// as from a server far away).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for SipResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    sock: UdpSocket,
    status: Arc<AtomicU16>,
    delay_us: Arc<AtomicU64>,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 65_535];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let code = status.load(Ordering::SeqCst);
        if code == 0 {
            continue;
        }
        let delay = delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        if let Some(resp) = answer(&String::from_utf8_lossy(&buf[..n]), code)
            && sock.send_to(resp.as_bytes(), peer).is_ok()
        {
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The response to an OPTIONS request, `None` for anything else.
pub fn answer(req: &str, code: u16) -> Option<String> {
    if !req.starts_with("OPTIONS ") {
        return None;
    }
    let reason = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.split("\r\n").skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                out.push_str(&format!("{line}\r\n"))
            }
            "to" | "t" => out.push_str(&format!("{line};tag=responder\r\n")),
            _ => {}
        }
    }
    out.push_str("Server: fake-fleet\r\nContent-Length: 0\r\n\r\n");
    Some(out)
}
