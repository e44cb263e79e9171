//! `dnslb check`'s warning on a `proxy_from` (in `[ls]` or a `[[ts]]`)
//! that lists a whole address family (`0.0.0.0/0`, `::/0`) or a prefix
//! about as wide: every sender there may then name any client it likes,
//! past the ACL, the rules, the rate limits and the views.
use crate::config::Config;

/// Prefixes shorter than these (IPv4, IPv6) are warned about.
const NARROWEST_WIDE: (u8, u8) = (8, 32);

/// Each key (dotted path) whose `proxy_from` lists a wide prefix, and the
/// warning for it.
pub fn wide_senders(cfg: &Config) -> Vec<(String, String)> {
    let ls = cfg
        .ls
        .iter()
        .map(|ls| ("ls.proxy_from".to_owned(), &ls.proxy_from));
    let ts =
        (cfg.ts.iter().enumerate()).map(|(i, ts)| (format!("ts.{i}.proxy_from"), &ts.proxy_from));
    ls.chain(ts)
        .filter_map(|(at, nets)| {
            let wide = nets.iter().find(|n| {
                let narrowest = match n {
                    ipnet::IpNet::V4(_) => NARROWEST_WIDE.0,
                    ipnet::IpNet::V6(_) => NARROWEST_WIDE.1,
                };
                n.prefix_len() < narrowest
            })?;
            let msg = format!(
                "warning: {wide} is believed to send PROXY headers: any sender in it may name any client \
                 (past allow, rules, rate limits and views); list your front load balancers' addresses only"
            );
            Some((at, msg))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_family_is_warned_about_and_a_front_balancers_address_is_not() {
        let mut cfg = Config::default();
        let mut ls = crate::config::LsConfig {
            proxy_from: vec!["10.0.0.5/32".parse().unwrap()],
            ..Default::default()
        };
        cfg.ls = Some(ls.clone());
        assert!(wide_senders(&cfg).is_empty());
        ls.proxy_from.push("0.0.0.0/0".parse().unwrap());
        cfg.ls = Some(ls);
        let addr = "127.0.0.1:5301".parse().unwrap();
        let mut ts = crate::config::TsConfig::new("ts1", addr, Vec::new());
        ts.proxy_from = vec!["::/0".parse().unwrap()];
        cfg.ts.push(ts);
        let w = wide_senders(&cfg);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, "ls.proxy_from");
        assert!(w[0].1.contains("0.0.0.0/0"), "{}", w[0].1);
        assert_eq!(w[1].0, "ts.0.proxy_from");
    }
}
