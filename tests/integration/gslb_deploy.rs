//! DEPLOY.md "Service answers (health-following names)" walked as written
//! (issue 38's hostile read found no service section there): two web
//! servers, `dnslb up` with one TS answering `app.example.test` with the
//! live ones, one server killed and gone from the TS's answer and its
//! `/metrics`. The walk is tests/integration/deploy_recipes.rs's; only the
//! ports are moved when one is taken.
use std::path::Path;

use crate::deploy_recipes::{SETTLE, port_free, walk};
use crate::docs::with_zones;
use crate::kit::{BIN, free_ports, need};

/// The ports of the walk: the LS, the TS, the TS's metrics, the web servers.
const WALK_PORTS: [u16; 4] = [5350, 5351, 5359, 8080];

#[test]
fn the_service_answers_recipe_runs_as_written() {
    const TEST: &str = "the_service_answers_recipe_runs_as_written";
    if need(TEST, ["dig", "curl", "python3"]).is_none() {
        return;
    }
    let dir = with_zones();
    let ports: Vec<u16> = if WALK_PORTS.iter().all(|&p| port_free(p)) {
        WALK_PORTS.to_vec()
    } else {
        free_ports(WALK_PORTS.len())
    };
    let rewrite = |text: &str| -> String {
        let mut t = text.to_owned();
        for (from, to) in WALK_PORTS.iter().zip(&ports) {
            t = t.replace(&from.to_string(), &to.to_string());
        }
        t
    };
    let w = walk(
        "## Service answers (health-following names)",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    assert!(
        w.files.len() == 1 && w.ran >= 8,
        "only {} files and {} commands in the walk",
        w.files.len(),
        w.ran
    );
}
