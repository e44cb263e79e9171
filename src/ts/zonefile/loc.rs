//! LOC (RFC 1876 §3) in presentation form, as NSD reads it.
use super::cursor::{Bad, Fields};
use super::fields;

/// LOC: `d [m [s]] N|S d [m [s]] E|W alt[m] [size[m] [hp[m] [vp[m]]]]`.
pub(super) fn loc(f: &mut Fields<'_>) -> Result<Vec<u8>, Bad> {
    let mut words: Vec<String> = Vec::new();
    for token in f.rest("location")? {
        f.line = token.line;
        words.push(f.bad(fields::text(token.text))?.to_owned());
    }
    f.at = f.tokens.len();
    let bad = |what: &str| (f.line, format!("bad LOC {what}"));
    let mut it = words.iter().map(String::as_str).peekable();
    // Degrees, minutes, seconds up to the hemisphere letter: thousandths of a second.
    let mut angle = |pos: &str, neg: &str, max: i64| -> Result<u32, Bad> {
        let mut parts = Vec::new();
        let sign = loop {
            let w = it.next().ok_or_else(|| bad("coordinates"))?;
            if w.eq_ignore_ascii_case(pos) {
                break 1i64;
            }
            if w.eq_ignore_ascii_case(neg) {
                break -1;
            }
            parts.push(w);
        };
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad("coordinates"));
        }
        let deg = parts[0].parse::<i64>().map_err(|_| bad("degrees"))?;
        let min = parts
            .get(1)
            .map_or(Ok(0), |m| m.parse::<i64>())
            .map_err(|_| bad("minutes"))?;
        let ms = parts
            .get(2)
            .map_or(Ok(0), |s| thousandths(s))
            .map_err(|_| bad("seconds"))?;
        if deg > max || min > 59 || ms > 59_999 || deg < 0 || min < 0 || ms < 0 {
            return Err(bad("coordinates"));
        }
        let value = (deg * 3_600_000 + min * 60_000 + ms) * sign;
        if value.abs() > max * 3_600_000 {
            return Err(bad("coordinates"));
        }
        Ok(((1i64 << 31) + value) as u32)
    };
    let lat = angle("N", "S", 90)?;
    let lon = angle("E", "W", 180)?;
    let meters = |w: &str| -> Result<i64, Bad> {
        let w = w.strip_suffix(['m', 'M']).unwrap_or(w);
        let cm = hundredths(w).ok_or_else(|| bad("meters"))?;
        Ok(cm)
    };
    let alt = meters(it.next().ok_or_else(|| bad("altitude"))?)?;
    let alt = u32::try_from(10_000_000 + alt).map_err(|_| bad("altitude"))?;
    let mut precs = [100i64, 1_000_000, 1_000];
    for p in &mut precs {
        if let Some(w) = it.next() {
            *p = meters(w)?;
        }
    }
    if it.next().is_some() {
        return Err(bad("data: too many fields"));
    }
    let mut out = vec![0];
    for p in precs {
        if !(0..=9_000_000_000).contains(&p) {
            return Err(bad("precision"));
        }
        let mut exponent = 0u32;
        while exponent < 9 && p >= 10i64.pow(exponent + 1) {
            exponent += 1;
        }
        let mantissa = (p / 10i64.pow(exponent)).min(9) as u8;
        out.push(mantissa << 4 | exponent as u8);
    }
    out.extend(lat.to_be_bytes());
    out.extend(lon.to_be_bytes());
    out.extend(alt.to_be_bytes());
    Ok(out)
}

/// A decimal with at most `places` digits after the point, times 10^places.
fn fixed_point(s: &str, places: u32) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > places as usize {
        return None;
    }
    let int = int.parse::<i64>().ok()?;
    let mut frac_value = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()?
    };
    frac_value *= 10i64.pow(places - frac.len() as u32);
    let v = int
        .checked_mul(10i64.pow(places))?
        .checked_add(frac_value)?;
    Some(if neg { -v } else { v })
}

fn thousandths(s: &str) -> Result<i64, ()> {
    fixed_point(s, 3).filter(|v| *v >= 0).ok_or(())
}

fn hundredths(s: &str) -> Option<i64> {
    fixed_point(s, 2)
}
