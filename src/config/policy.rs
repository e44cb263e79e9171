//! The policy keys a `[[ls.pool]]` may set over `[ls]`'s, each declared once in
//! `policy_keys!`: its doc, its name, its type and its `[ls]` default. From that one
//! list come the `[ls]` field (in [`LsConfig`] and its `Default`), the pool's `Option`
//! field (in [`PoolConfig`]), [`PolicyConfig`] (the keys' values for `[ls]` or for a
//! pool: [`LsConfig::policy`], [`LsConfig::policy_of`], the one merge) and
//! [`PolicyConfig::KEYS`] (what a reload takes, `changes`).
//!
//! Why a macro and not `#[serde(flatten)]` of one struct: serde buffers a flattened
//! struct's keys without toml's spans, so an unknown or bad key in `[ls]` or
//! `[[ls.pool]]` was then reported at the table's line, without the key's name, "did
//! you mean" or the list of valid keys (tried: `unknown table 'stratgy' at top level`,
//! `ls: unknown variant ...`). With the keys spliced into the two structs, serde's
//! derive sees plain fields and every message stays `file:line: key: ...`.

use super::{Layout, LsConfig, OnTimeout, Order, PoolConfig, Strategy};

/// Calls `$callback! { { $($args)* } <each policy key> }`, each key written
/// `/// doc` `name: Type = [ls] default,`. The one list of the policy keys: a key
/// added here is a key of `[ls]` and of `[[ls.pool]]`, merged and reloaded (its type
/// must be `Copy`, and `Policy` in ls/state/policy.rs reads it).
macro_rules! policy_keys {
    ($callback:ident ! { $($args:tt)* }) => {
        $callback! { { $($args)* }
            /// How many backends a query goes to, and when. \[hedge\]
            strategy: Strategy = Strategy::default(),
            /// Who is asked first. \[least-outstanding\]
            order: Order = Order::default(),
            /// How names are spread over the backends. \[partitioned\]
            layout: Layout = Layout::default(),
            /// Deadline for a final answer, in ms. \[1500\]
            timeout_ms: u64 = 1500,
            /// What to answer at the deadline. \[nxdomain\]
            on_timeout: OnTimeout = OnTimeout::default(),
        }
    };
}

/// `policy_keys!(ls_struct! { struct ... })`: the struct with each policy key as a
/// field of its own, first (`[ls]`).
macro_rules! ls_struct {
    (
        { $(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* } }
        $( $(#[$doc:meta])* $key:ident : $ty:ty = $default:expr, )+
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$doc])* pub $key: $ty, )+
            $($body)*
        }
    };
}

/// `policy_keys!(ls_defaults! { Self { ... } })`: the struct literal with each policy
/// key at its default (`[ls]`'s `Default`).
macro_rules! ls_defaults {
    (
        { $name:ident { $($body:tt)* } }
        $( $(#[$doc:meta])* $key:ident : $ty:ty = $default:expr, )+
    ) => {
        $name {
            $( $key: $default, )+
            $($body)*
        }
    };
}

/// `policy_keys!(pool_struct! { struct ... })`: the struct with each policy key as an
/// `Option` field, first (`[[ls.pool]]`: `None` takes `[ls]`'s).
macro_rules! pool_struct {
    (
        { $(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* } }
        $( $(#[$doc:meta])* $key:ident : $ty:ty = $default:expr, )+
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                #[doc = concat!("As `ls.", stringify!($key), "`, for this pool. \\[the `[ls]` value\\]")]
                pub $key: Option<$ty>,
            )+
            $($body)*
        }
    };
}

/// `policy_keys!(policy_config! {})`: [`PolicyConfig`] and its merge.
macro_rules! policy_config {
    ({} $( $(#[$doc:meta])* $key:ident : $ty:ty = $default:expr, )+) => {
        /// The policy keys' values: `[ls]`'s ([`LsConfig::policy`]) or a pool's, its
        /// own over `[ls]`'s ([`LsConfig::policy_of`]).
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct PolicyConfig {
            $( $(#[$doc])* pub $key: $ty, )+
        }

        impl PolicyConfig {
            /// The policy keys, as written in `[ls]` and `[[ls.pool]]`.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),+];

            /// `ls`'s values.
            fn of_ls(ls: &LsConfig) -> Self {
                Self { $( $key: ls.$key, )+ }
            }

            /// `pool`'s values where it sets them, `ls`'s for the others.
            fn of_pool(ls: &LsConfig, pool: &PoolConfig) -> Self {
                Self { $( $key: pool.$key.unwrap_or(ls.$key), )+ }
            }
        }
    };
}

policy_keys!(policy_config! {});

impl LsConfig {
    /// The policy keys of `[ls]`.
    pub fn policy(&self) -> PolicyConfig {
        PolicyConfig::of_ls(self)
    }

    /// The policy keys of `pool`: the ones it sets, `[ls]`'s for the others.
    pub fn policy_of(&self, pool: &PoolConfig) -> PolicyConfig {
        PolicyConfig::of_pool(self, pool)
    }

    /// The longest deadline of any query: `timeout_ms`, or a pool's when longer (how
    /// long a stopping LS waits for its queries in flight).
    pub fn longest_timeout_ms(&self) -> u64 {
        self.pool
            .iter()
            .map(|p| self.policy_of(p).timeout_ms)
            .fold(self.timeout_ms, u64::max)
    }
}
