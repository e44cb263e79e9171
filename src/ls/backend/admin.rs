//! A backend's state set by hand (`dnslb backend NAME drain|down|auto`),
//! apart from its health: [`AdminState`], held in an [`Admin`] cell (an
//! atomic: read on every query's choice of backends, set by the live
//! control). `auto`: health decides; `drain`: no new client queries (the
//! ones in flight finish, health checks go on) unless every backend of the
//! route is drained or down, and under `layout = "partitioned"`, where no
//! other backend holds its names, asked last (once the others have
//! answered) so its names are still answered; `down`: as if health said
//! down (a route whose backends are all down still tries them all rather
//! than fail blind; under `partitioned` its names get the `on_timeout`
//! answer). What a state does for a backend's routes, in words: [`effect`].
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::config::OnTimeout;

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

/// The layouts of the routes a backend is in ([`effect`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InRoutes {
    /// A `partitioned` route has it: that route's `on_timeout`.
    pub partitioned: Option<OnTimeout>,
    /// A `replicated` route has it.
    pub replicated: bool,
}

/// What setting a backend to `state` does for the routes it is in, in
/// words (pure): the reply of `dnslb backend NAME STATE`.
pub fn effect(state: AdminState, routes: InRoutes) -> String {
    let mut parts = Vec::new();
    let both = routes.partitioned.is_some() && routes.replicated;
    let under = |layout: &str| {
        if both {
            format!("under the {layout} layout, ")
        } else {
            String::new()
        }
    };
    // What it does to the names of each layout it is in, then to itself.
    let (partitioned, replicated, always) = match state {
        AdminState::Auto => return "health decides".to_owned(),
        AdminState::Drain => (
            routes.partitioned.map(|_| {
                "asked last, once the other backends have answered (none holds its \
                 names): its names are still answered"
                    .to_owned()
            }),
            "no new queries while another backend is usable",
            "queries in flight finish; health checks go on",
        ),
        AdminState::Down => (
            routes.partitioned.map(|on_timeout| {
                format!(
                    "not asked, as if health said down: no other backend holds its names, \
                     so they get the on_timeout answer ({on_timeout}) while it is down \
                     (`drain` keeps them answered)"
                )
            }),
            "not asked while another backend is up, as if health said down",
            "health checks go on",
        ),
    };
    if let Some(partitioned) = partitioned {
        parts.push(format!("{}{partitioned}", under("partitioned")));
    }
    if routes.replicated {
        parts.push(format!("{}{replicated}", under("replicated")));
    }
    parts.push(always.to_owned());
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_says_what_the_state_does_in_each_layout() {
        let partitioned = InRoutes {
            partitioned: Some(OnTimeout::Nxdomain),
            replicated: false,
        };
        let replicated = InRoutes {
            partitioned: None,
            replicated: true,
        };
        let drain = effect(AdminState::Drain, partitioned);
        assert!(drain.starts_with("asked last"), "{drain}");
        assert!(drain.contains("its names are still answered"), "{drain}");
        let down = effect(AdminState::Down, partitioned);
        assert!(
            down.contains("they get the on_timeout answer (nxdomain) while it is down"),
            "{down}"
        );
        let down = effect(AdminState::Down, replicated);
        assert!(
            down.starts_with("not asked while another backend is up"),
            "{down}"
        );
        assert!(!down.contains("on_timeout"), "{down}");
        let drain = effect(AdminState::Drain, replicated);
        assert!(drain.starts_with("no new queries while another backend is usable"));
        let both = InRoutes {
            partitioned: Some(OnTimeout::Servfail),
            replicated: true,
        };
        let down = effect(AdminState::Down, both);
        assert!(
            down.contains("under the partitioned layout, not asked"),
            "{down}"
        );
        assert!(down.contains("(servfail)"), "{down}");
        assert!(
            down.contains("under the replicated layout, not asked"),
            "{down}"
        );
        assert_eq!(effect(AdminState::Auto, both), "health decides");
    }

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
