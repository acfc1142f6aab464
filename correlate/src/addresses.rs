//! Socket addresses (`skaddr`) and the 4-tuples they carry, as the kernel reports them.
//!
//! A 4-tuple can briefly belong to two sockets: when two CPUs complete the same handshake
//! at once, the kernel creates a second child socket and destroys it at once. Its
//! `tcp_destroy_sock` names the same 4-tuple as the live connection, and must not end it.

use hashbrown::HashMap;

use crate::event::Tuple;

/// Which tuple each socket address has, and which addresses each tuple has.
#[derive(Debug, Default)]
pub struct Addresses {
    tuple_of: HashMap<u64, Tuple>,
    sockets_of: HashMap<Tuple, Vec<u64>>,
}

impl Addresses {
    /// Socket `sk` has `tuple` (an address can be reused by a later socket).
    pub fn learn(&mut self, sk: u64, tuple: Tuple) {
        if let Some(old) = self.tuple_of.insert(sk, tuple) {
            if old == tuple {
                return;
            }
            self.forget_in(old, sk);
        }
        self.sockets_of.entry(tuple).or_default().push(sk);
    }

    /// The tuple socket `sk` was last seen with.
    pub fn tuple(&self, sk: u64) -> Option<Tuple> {
        self.tuple_of.get(&sk).copied()
    }

    /// Socket `sk` (when known) with `tuple` is destroyed. Returns whether the connection is
    /// gone: false while another socket still has the tuple.
    pub fn destroyed(&mut self, sk: Option<u64>, tuple: Tuple) -> bool {
        if let Some(sk) = sk {
            if self.tuple_of.get(&sk) == Some(&tuple) {
                self.tuple_of.remove(&sk);
            }
            self.forget_in(tuple, sk);
            if self.sockets_of.contains_key(&tuple) {
                return false;
            }
        }
        true
    }

    fn forget_in(&mut self, tuple: Tuple, sk: u64) {
        if let Some(v) = self.sockets_of.get_mut(&tuple) {
            v.retain(|&s| s != sk);
            if v.is_empty() {
                self.sockets_of.remove(&tuple);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_socket_dying_leaves_the_connection() {
        let mut a = Addresses::default();
        a.learn(1, Tuple::ports(80, 40000));
        a.learn(2, Tuple::ports(80, 40000)); // the duplicate child
        assert!(!a.destroyed(Some(2), Tuple::ports(80, 40000)));
        assert_eq!(a.tuple(1), Some(Tuple::ports(80, 40000)));
        assert!(a.destroyed(Some(1), Tuple::ports(80, 40000)));
        assert_eq!(a.tuple(1), None);
    }

    #[test]
    fn a_reused_address_moves_to_its_new_tuple() {
        let mut a = Addresses::default();
        a.learn(1, Tuple::ports(80, 40000));
        a.learn(1, Tuple::ports(80, 40001));
        assert!(
            a.destroyed(Some(9), Tuple::ports(80, 40000)),
            "no socket left there"
        );
        assert!(
            a.destroyed(None, Tuple::ports(80, 40001)),
            "no address: the tuple ends"
        );
    }
}
