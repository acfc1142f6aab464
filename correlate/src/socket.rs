//! Socket identity: which side of a connection serves, and which endpoints are ingresses.

use crate::event::{Endpoint, Tuple};

/// Which side of a connection a socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepted: it reads requests and writes responses.
    Server,
    /// Connected: it writes requests and reads responses.
    Client,
}

/// First port of Linux's default ephemeral range (`net.ipv4.ip_local_port_range`).
pub const EPHEMERAL_START: u16 = 32768;

/// Guesses the role of a socket from its ports when neither `accept` nor `connect` was seen:
/// the side with a service port (below the ephemeral range, or the lower of two) serves.
pub fn role_from_ports(t: &Tuple) -> Role {
    let (l, r) = (t.local.port, t.remote.port);
    let l_service = l < EPHEMERAL_START;
    let r_service = r < EPHEMERAL_START;
    match (l_service, r_service) {
        (true, false) => Role::Server,
        (false, true) => Role::Client,
        _ if l < r => Role::Server,
        _ => Role::Client,
    }
}

/// An ingress endpoint: requests start when a server socket bound here reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// Address, or `None` for any address.
    pub addr: Option<u32>,
    /// Port.
    pub port: u16,
}

impl Ingress {
    /// Whether a server socket's local endpoint is this ingress.
    pub fn matches(&self, local: Endpoint) -> bool {
        self.port == local.port && self.addr.is_none_or(|a| a == local.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_port_side_serves() {
        assert_eq!(role_from_ports(&Tuple::ports(18080, 41004)), Role::Server);
        assert_eq!(role_from_ports(&Tuple::ports(41004, 18080)), Role::Client);
        assert_eq!(role_from_ports(&Tuple::ports(6379, 80)), Role::Client);
        assert_eq!(role_from_ports(&Tuple::ports(80, 6379)), Role::Server);
    }

    #[test]
    fn ingress_without_address_matches_any() {
        let any = Ingress {
            addr: None,
            port: 80,
        };
        assert!(any.matches(Endpoint { addr: 5, port: 80 }));
        assert!(!any.matches(Endpoint { addr: 5, port: 81 }));
        let one = Ingress {
            addr: Some(1),
            port: 80,
        };
        assert!(!one.matches(Endpoint { addr: 5, port: 80 }));
    }
}
