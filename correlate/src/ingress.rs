//! Choosing the ingress when the user names none.
//!
//! An ingress is a server endpoint whose clients are not themselves serving anything in the
//! trace: the load generator or outside world calls nginx, nginx (which serves) calls the
//! application, the application (which serves) calls redis; only nginx's port qualifies.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{Endpoint, Tuple};
use crate::socket::{role_from_ports, Ingress, Role};
use crate::{Error, Interner, Result};

/// Picks ingress endpoints from the receives of a trace: `(process, socket tuple)` for each
/// `tcp_rcv_space_adjust` (a read on that socket).
pub fn detect(receives: impl IntoIterator<Item = (i32, Tuple)>) -> Vec<Endpoint> {
    let mut serving = BTreeSet::new();
    let mut servers: BTreeSet<Endpoint> = BTreeSet::new();
    let mut clients: BTreeMap<Endpoint, BTreeSet<i32>> = BTreeMap::new();
    for (pid, t) in receives {
        match role_from_ports(&t) {
            Role::Server => {
                serving.insert(pid);
                servers.insert(t.local);
            }
            Role::Client => {
                clients.entry(t.remote).or_default().insert(pid);
            }
        }
    }
    servers
        .into_iter()
        .filter(|s| {
            clients
                .get(s)
                .is_none_or(|c| c.iter().all(|p| !serving.contains(p)))
        })
        .collect()
}

/// Parses `ADDR:PORT`, `[V6]:PORT` or `:PORT` (any address).
pub fn parse(spec: &str, names: &mut Interner) -> Result<Ingress> {
    let bad = || Error::Invalid(format!("--ingress {spec:?}: expected ADDR:PORT or :PORT"));
    let (addr, port) = spec.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr = match addr {
        "" | "*" | "0.0.0.0" | "::" => None,
        a => Some(names.intern(a)),
    };
    Ok(Ingress { addr, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(lp: u16, rp: u16) -> Tuple {
        Tuple {
            local: Endpoint { addr: 0, port: lp },
            remote: Endpoint { addr: 0, port: rp },
        }
    }

    #[test]
    fn front_end_is_the_server_whose_clients_serve_nothing() {
        // loadgen(1) -> nginx(2) :18080 -> app(3) :18081 -> redis(4) :16379
        let recv = [
            (2, t(18080, 40000)),
            (1, t(40000, 18080)),
            (3, t(18081, 40001)),
            (2, t(40001, 18081)),
            (4, t(16379, 40002)),
            (3, t(40002, 16379)),
        ];
        let got = detect(recv);
        assert_eq!(
            got,
            vec![Endpoint {
                addr: 0,
                port: 18080
            }]
        );
    }

    #[test]
    fn parses_specs() {
        let mut n = Interner::default();
        let i = parse("127.0.0.1:18080", &mut n).expect("test value");
        assert_eq!((i.addr, i.port), (n.get("127.0.0.1"), 18080));
        assert_eq!(parse(":80", &mut n).expect("test value").addr, None);
        assert_eq!(
            parse("[::1]:80", &mut n).expect("test value").addr,
            n.get("::1")
        );
        assert!(parse("nonsense", &mut n).is_err());
    }
}
