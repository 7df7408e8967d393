//! The handshake flood: for a while, many TCP connections to an agent's cluster port, each
//! sending random bytes, or a few bytes of a would-be handshake and then nothing, or nothing at
//! all. The agent must stay up and keep serving.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Threads connecting at once, and connections each keeps open (the half handshakes).
const THREADS: usize = 4;
const HELD_PER_THREAD: usize = 64;

/// Connections the flood made.
pub struct FloodStats {
    pub connections: u64,
}

/// Floods `addr` for `time` (blocks until done).
pub fn flood(addr: &str, time: Duration, seed: u64) -> FloodStats {
    let until = Instant::now() + time;
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let addr = addr.to_owned();
            std::thread::spawn(move || one_thread(&addr, until, seed.wrapping_add(t)))
        })
        .collect();
    let connections = threads.into_iter().filter_map(|t| t.join().ok()).sum();
    FloodStats { connections }
}

fn one_thread(addr: &str, until: Instant, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut held: Vec<TcpStream> = Vec::new();
    let mut made = 0;
    while Instant::now() < until {
        let Ok(mut s) = TcpStream::connect_timeout(
            &addr.parse().expect("an IP address"),
            Duration::from_millis(500),
        ) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        made += 1;
        let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
        match rng.gen_range(0..3) {
            0 => {
                let mut junk = vec![0u8; rng.gen_range(1..4096)];
                rng.fill_bytes(&mut junk);
                let _ = s.write_all(&junk);
            }
            1 => {
                // The start of a frame: a length, then a little of what it promised.
                let mut junk = vec![0u8; rng.gen_range(1..16)];
                rng.fill_bytes(&mut junk);
                let _ = s.write_all(&(1024u32).to_be_bytes());
                let _ = s.write_all(&junk);
                if held.len() < HELD_PER_THREAD {
                    held.push(s);
                }
            }
            _ => {
                if held.len() < HELD_PER_THREAD {
                    held.push(s);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    made
}
