//! Which clients the XDP program drops before any socket: those outside the
//! allowed networks (the LS's `allow`, when the LS has one) and those in a
//! network a block with the action drop holds. Pure: [`Filter::changes`]
//! says what to add to and take from the program's tries to go from one
//! filter to the next.
use ipnet::IpNet;

/// The networks the program serves and blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these networks are served; `None`: everyone.
    pub allow: Option<Vec<IpNet>>,
    /// These networks are dropped.
    pub blocked: Vec<IpNet>,
}

/// One trie's changes: networks to insert, networks to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrieChanges {
    /// Inserted.
    pub add: Vec<IpNet>,
    /// Removed.
    pub remove: Vec<IpNet>,
}

/// What changes from one filter to the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The allowed networks' trie.
    pub allow: TrieChanges,
    /// The blocked networks' trie.
    pub blocked: TrieChanges,
}

impl Filter {
    /// The changes that make the tries of `self` those of `next`; networks
    /// are taken in their canonical form (host bits cleared), once.
    pub fn changes(&self, next: &Filter) -> Changes {
        let none = Vec::new();
        Changes {
            allow: diff(
                self.allow.as_ref().unwrap_or(&none),
                next.allow.as_ref().unwrap_or(&none),
            ),
            blocked: diff(&self.blocked, &next.blocked),
        }
    }
}

fn canonical(nets: &[IpNet]) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
    v.sort();
    v.dedup();
    v
}

fn diff(old: &[IpNet], new: &[IpNet]) -> TrieChanges {
    let (old, new) = (canonical(old), canonical(new));
    TrieChanges {
        add: new.iter().filter(|n| !old.contains(n)).copied().collect(),
        remove: old.iter().filter(|n| !new.contains(n)).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn changes_add_what_is_new_and_remove_what_went_in_canonical_form() {
        let old = Filter {
            allow: Some(nets(&["10.0.0.0/8", "192.168.1.7/24"])),
            blocked: nets(&["198.18.0.2/32"]),
        };
        let next = Filter {
            allow: Some(nets(&["192.168.1.0/24", "2001:db8::/32"])),
            blocked: nets(&["198.18.0.2/32", "198.18.0.3/32", "198.18.0.3/32"]),
        };
        let c = old.changes(&next);
        assert_eq!(c.allow.add, nets(&["2001:db8::/32"]));
        assert_eq!(c.allow.remove, nets(&["10.0.0.0/8"]));
        assert_eq!(c.blocked.add, nets(&["198.18.0.3/32"]));
        assert!(c.blocked.remove.is_empty());
        assert_eq!(next.changes(&next), Changes::default());
        let everyone = Filter::default();
        assert_eq!(next.changes(&everyone).allow.remove.len(), 2);
    }
}
