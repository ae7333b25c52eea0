//! Loopback addresses for emulated nodes and pods. Each sandbox takes a random pair of
//! /24 blocks inside 127.0.0.0/8 (never 127.0.0.1, where other tests own ports): nodes get
//! `127.A.B.1..`, pods `127.A.(B+1).1..` (spilling into `B+2`, `B+3` past 254 pods). Linux
//! answers on every 127/8 address without configuration, so a process can bind its own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

use rand::Rng;

/// How many /24 blocks a sandbox's pods may spill into.
const POD_BLOCKS: u8 = 4;

#[derive(Debug)]
pub struct Addresses {
    a: u8,
    b: u8,
    /// Pod addresses handed out and not yet released.
    pods: Mutex<Vec<bool>>,
}

impl Addresses {
    /// Picks a block no process on this machine is listening in (checked on the Redis port
    /// of the first node and first pod address), retrying a few random choices.
    pub fn pick() -> Addresses {
        let mut rng = rand::rng();
        let mut choice = (rng.random_range(100..=250u8), 0u8);
        for _ in 0..20 {
            let a = rng.random_range(100..=250u8);
            let b = rng.random_range(0..=(250 - POD_BLOCKS)) & !0x7;
            choice = (a, b);
            let free = [Ipv4Addr::new(127, a, b, 1), Ipv4Addr::new(127, a, b + 1, 1)]
                .iter()
                .all(|ip| TcpListener::bind(SocketAddr::from((*ip, 6379))).is_ok());
            if free {
                break;
            }
        }
        Addresses::with_block(choice.0, choice.1)
    }

    pub fn with_block(a: u8, b: u8) -> Addresses {
        Addresses {
            a,
            b,
            pods: Mutex::new(vec![false; 254 * usize::from(POD_BLOCKS - 1)]),
        }
    }

    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        let last = u8::try_from(index + 1).unwrap_or(254).min(254);
        Ipv4Addr::new(127, self.a, self.b, last)
    }

    /// A free pod address, or None when every one is taken.
    pub fn allocate_pod_ip(&self) -> Option<Ipv4Addr> {
        let mut used = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        let slot = used.iter().position(|u| !u)?;
        used[slot] = true;
        Some(self.pod_ip(slot))
    }

    pub fn release_pod_ip(&self, ip: Ipv4Addr) {
        let [_, a, c, d] = ip.octets();
        if a != self.a || c <= self.b || d == 0 || d == 255 {
            return;
        }
        let slot = usize::from(c - self.b - 1) * 254 + usize::from(d - 1);
        let mut used = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = used.get_mut(slot) {
            *u = false;
        }
    }

    fn pod_ip(&self, slot: usize) -> Ipv4Addr {
        let block = u8::try_from(slot / 254).unwrap_or(0);
        let last = u8::try_from(slot % 254).unwrap_or(0) + 1;
        Ipv4Addr::new(127, self.a, self.b + 1 + block, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_pods_take_separate_blocks_and_addresses_are_reused_once_released() {
        let addrs = Addresses::with_block(120, 8);
        assert_eq!(addrs.node_ip(0), Ipv4Addr::new(127, 120, 8, 1));
        let first = addrs.allocate_pod_ip();
        assert_eq!(first, Some(Ipv4Addr::new(127, 120, 9, 1)));
        assert_eq!(addrs.allocate_pod_ip(), Some(Ipv4Addr::new(127, 120, 9, 2)));
        if let Some(ip) = first {
            addrs.release_pod_ip(ip);
        }
        assert_eq!(addrs.allocate_pod_ip(), first);
    }

    #[test]
    fn a_picked_block_is_never_the_one_of_127_0_0_1() {
        let addrs = Addresses::pick();
        assert!(addrs.node_ip(0).octets()[1] >= 100);
    }
}
