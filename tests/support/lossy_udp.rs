//! A UDP relay on loopback that loses requests: it forwards one datagram
//! from the client in every `keep_one_in` to the upstream (the rest are
//! dropped, as on a lossy link) and relays the upstream's answers back.
//! `keep_one_in` can change while it runs (1: no loss). Stopped on drop.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct LossyUdp {
    pub addr: SocketAddr,
    keep_one_in: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl LossyUdp {
    pub fn start(upstream: SocketAddr, keep_one_in: usize) -> LossyUdp {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
        let back = UdpSocket::bind("127.0.0.1:0").expect("bind the relay's upstream side");
        back.connect(upstream).expect("connect to the upstream");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let addr = front.local_addr().unwrap();
        let keep = Arc::new(AtomicUsize::new(keep_one_in.max(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (k, s1, c1) = (keep.clone(), stop.clone(), client.clone());
        let forward = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut n = 0usize;
            while !s1.load(Ordering::SeqCst) {
                let Ok((len, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                *c1.lock().unwrap() = Some(from);
                n += 1;
                if n.is_multiple_of(k.load(Ordering::SeqCst)) {
                    let _ = back.send(&buf[..len]);
                }
            }
        });
        let s2 = stop.clone();
        let back_relay = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s2.load(Ordering::SeqCst) {
                let Ok(len) = back2.recv(&mut buf) else {
                    continue;
                };
                if let Some(to) = *client.lock().unwrap() {
                    let _ = front2.send_to(&buf[..len], to);
                }
            }
        });
        LossyUdp {
            addr,
            keep_one_in: keep,
            stop,
            threads: vec![forward, back_relay],
        }
    }

    /// From now on, forward one request in `n` (1: all).
    pub fn keep_one_in(&self, n: usize) {
        self.keep_one_in.store(n.max(1), Ordering::SeqCst);
    }
}

impl Drop for LossyUdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
