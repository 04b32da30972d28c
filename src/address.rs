//! Client addresses as the per-address limits count them: the connection limit
//! (`server::admission`) and the per-address call rate (`middleware::rate`).

use std::net::IpAddr;

/// The key that per-address limits count by: an IPv4 address, or the /64 prefix of an IPv6
/// address (one host usually gets a whole /64, so counting single IPv6 addresses would bound
/// nothing). IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressKey {
    V4(u32),
    V6(u64),
}

impl AddressKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.into()),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}
