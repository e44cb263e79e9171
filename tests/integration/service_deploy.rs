//! DEPLOY.md "Service answers (health-following names)" walked as written:
//! two web
//! servers, `dnslb up` with one TS answering `app.example.test` with the
//! live ones, one server killed and gone from the TS's answer and its
//! `/metrics`. The walk is the kit's (`kit::recipes::walk`, as deploy_recipes.rs runs it); only the
//! ports are moved when one is taken.
use std::path::Path;

use crate::kit::recipes::{SETTLE, move_ports, walk, walk_ports, with_zones};
use crate::kit::{BIN, need};

/// The ports of the walk: the LS, the TS, the TS's metrics, the web servers.
const WALK_PORTS: [u16; 4] = [5350, 5351, 5359, 8080];

#[test]
fn the_service_answers_recipe_runs_as_written() {
    const TEST: &str = "the_service_answers_recipe_runs_as_written";
    if need(TEST, ["dig", "curl", "python3"]).is_none() {
        return;
    }
    let dir = with_zones();
    let ports = walk_ports(&WALK_PORTS);
    let rewrite = |text: &str| move_ports(text, &WALK_PORTS, &ports);
    let w = walk(
        "## Service answers (health-following names)",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    w.assert_walked(1..=1, 8);
}
