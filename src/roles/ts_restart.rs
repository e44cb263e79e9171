//! The keys of a running TS's `[[ts]]` that a reload cannot apply: which
//! of them a new config changed, for the reload's log line and its warning
//! (a reload of `dnslb ts` rereads the zone files and applies `zones`; the
//! rest waits for a restart).
use crate::ts::TsSettings;

/// The warning of a reload whose config `now` changed keys of the TS's
/// `[[ts]]` that only a restart applies (a reload of `dnslb ts` rereads the
/// zone files only; `dnslb up` warns the same of its children), if any.
/// Nothing for a TS not started from a file.
pub(super) fn restart_warning(
    settings: &TsSettings,
    now: &crate::config::Config,
) -> Option<String> {
    let changed = restart_changes(settings, now);
    (!changed.is_empty()).then(|| {
        format!(
            "reload: [[ts]] changed: {}; only a restart of the TS applies that (the zones \
             are reread and `zones` applied now)",
            changed.join("; ")
        )
    })
}

/// The keys of the TS's `[[ts]]` that `now` changed, as `NAME (KEY, ...)`.
fn restart_changes(settings: &TsSettings, now: &crate::config::Config) -> Vec<String> {
    let Some((_, started)) = settings.started_as() else {
        return Vec::new();
    };
    let now: Vec<_> = now
        .ts
        .iter()
        .filter(|t| t.name == started.name)
        .cloned()
        .collect();
    crate::config::ts_restart_changes(std::slice::from_ref(&started), &now)
}

/// [`restart_changes`] without the TS's name: `listen, service`.
pub(super) fn restart_keys(settings: &TsSettings, now: &crate::config::Config) -> Vec<String> {
    let own = format!("{} (", settings.name);
    (restart_changes(settings, now).into_iter())
        .map(
            |c| match c.strip_prefix(&own).and_then(|k| k.strip_suffix(')')) {
                Some(keys) => keys.to_owned(),
                None => c,
            },
        )
        .collect()
}
