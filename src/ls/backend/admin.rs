//! A backend's state set by hand (`dnslb backend NAME drain|down|auto`),
//! apart from its health: [`AdminState`], held in an [`Admin`] cell (an
//! atomic: read on every query's choice of backends, set by the live
//! control). `auto`: health decides; `drain`: no new client queries (the
//! ones in flight finish, health checks go on) unless every backend of the
//! route is drained or down; `down`: as if health said down (a route whose
//! backends are all down still tries them all rather than fail blind).
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// A backend's state set by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// Health decides.
    #[default]
    Auto,
    /// No new client queries; in-flight ones finish; probes go on.
    Drain,
    /// As if health said down.
    Down,
}

impl AdminState {
    /// Every state, as `dnslb backend` takes them.
    pub const ALL: [AdminState; 3] = [AdminState::Auto, AdminState::Drain, AdminState::Down];

    /// The state as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Auto => "auto",
            AdminState::Drain => "drain",
            AdminState::Down => "down",
        }
    }

    /// The state written `text`.
    pub fn from_keyword(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => AdminState::Drain,
            2 => AdminState::Down,
            _ => AdminState::Auto,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            AdminState::Auto => 0,
            AdminState::Drain => 1,
            AdminState::Down => 2,
        }
    }
}

impl std::fmt::Display for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cell of a backend's [`AdminState`].
#[derive(Debug, Default)]
pub struct Admin(AtomicU8);

impl Admin {
    /// The state now.
    pub fn get(&self) -> AdminState {
        AdminState::from_u8(self.0.load(Relaxed))
    }

    /// Sets it; the state before.
    pub fn set(&self, s: AdminState) -> AdminState {
        AdminState::from_u8(self.0.swap(s.to_u8(), Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_keeps_what_was_set_and_says_what_was_before() {
        let a = Admin::default();
        assert_eq!(a.get(), AdminState::Auto);
        assert_eq!(a.set(AdminState::Drain), AdminState::Auto);
        assert_eq!(a.set(AdminState::Down), AdminState::Drain);
        assert_eq!(a.get(), AdminState::Down);
        for s in AdminState::ALL {
            assert_eq!(AdminState::from_keyword(s.as_str()), Some(s));
        }
        assert_eq!(AdminState::from_keyword("up"), None);
    }
}
