//! The commit `dnslb_build_info` and `/health` report (METRICS.md): the
//! build script's choice, `DNSLB_COMMIT` over `git` over `unknown`. The
//! build script is included here as a module, so its choice is tested as the
//! pure function it is.
#[path = "../../build.rs"]
#[allow(dead_code)]
mod build_script;

use build_script::commit;

#[test]
fn dnslb_commit_overrides_git_and_unknown_is_the_last_resort() {
    let git = || Some("0123abc".to_owned());
    assert_eq!(commit(Some(" v1.2-pkg \n".to_owned()), git), "v1.2-pkg");
    assert_eq!(commit(None, git), "0123abc");
    assert_eq!(
        commit(Some("  ".to_owned()), git),
        "0123abc",
        "blank: unset"
    );
    assert_eq!(commit(None, || None), "unknown");
}
