//! Texts of binary field values that repeat (IP addresses, task states), rendered once per
//! batch builder.

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::binary::decode::task_state_with;
use crate::promote::InlineStr;

/// Texts of the IP addresses seen, formatted once per builder. A trace mostly repeats a few
/// addresses: the first ones seen are scanned in a short list, the rest hashed.
#[derive(Debug, Default)]
pub(crate) struct IpTexts {
    few: Vec<(IpAddr, InlineStr)>,
    more: HashMap<IpAddr, InlineStr>,
}

impl IpTexts {
    const FEW: usize = 8;

    pub(super) fn text(&mut self, ip: IpAddr) -> InlineStr {
        if let Some((_, t)) = self.few.iter().find(|(a, _)| *a == ip) {
            return *t;
        }
        if let Some(t) = self.more.get(&ip) {
            return *t;
        }
        // An IPv6 text is at most 45 bytes, so it always fits.
        let t = InlineStr::new(&ip.to_string()).unwrap_or(InlineStr::EMPTY);
        if self.few.len() < Self::FEW {
            self.few.push((ip, t));
        } else {
            self.more.insert(ip, t);
        }
        t
    }
}

/// `prev_state` texts by state bits, rendered once per builder with the format's letters.
#[derive(Debug, Default)]
pub(crate) struct StateTexts(Vec<(u64, InlineStr)>);

impl StateTexts {
    pub(super) fn text(&mut self, bits: u64, letters: Option<&[(u64, String)]>) -> InlineStr {
        if let Some((_, t)) = self.0.iter().find(|(b, _)| *b == bits) {
            return *t;
        }
        let mut s = String::new();
        task_state_with(bits, letters, &mut s);
        let text = InlineStr::new(&s).unwrap_or(InlineStr::EMPTY);
        // A corrupt trace could show any bits: keep the cache small.
        if self.0.len() < 64 {
            self.0.push((bits, text));
        }
        text
    }
}
