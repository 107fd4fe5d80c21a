//! `turnout fleet cutover --waves 1,25%,100%`: the fleet cut over in waves, one all-or-none decision
//! per wave, with a soak between waves gated on every switched pair's health.
//!
//! A wave's size is cumulative — how many pairs are on green once it is done, as a count or a share
//! of the fleet, rounded up — and is stretched to the end of a group (`group` in `fleet.toml`): a
//! group's pairs always switch in the same decision. Pairs already on green (in their rollback
//! window: an earlier run's waves) count as done, so running the same command again goes on where a
//! stopped run left off. After each wave but the last, for `--soak`, every pair on green must stay
//! healthy: its sidecar reachable and in its rollback window, no error, no alert above `ok`, its
//! reverse stream's lag under `--soak-max-lag`, no write on blue that is not turnout's
//! unacknowledged; then `--gate-command`, when given, must exit 0. The first failure stops the
//! fleet where it is, naming the pairs on green; `turnout fleet rollback` takes back exactly those.

use super::{decide_once, pair_status, save, traffic, CutoverArgs, Traffic};
use crate::error::{Error, EXIT_FAILED};
use crate::fleet::config::{FleetFile, Pair};
use std::time::{Duration, Instant};
use turnout_decoders::Side;

/// How long a soak waits for a pair just switched to begin its rollback window.
const WINDOW_WAIT: Duration = Duration::from_secs(30);

/// One wave's size: how many pairs are on green once it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Pairs(usize),
    Percent(u8),
}

/// `--waves` as given: each wave's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes(pub Vec<Size>);

/// `--waves`, `--soak`, `--soak-max-lag` and `--gate-command`.
#[derive(Clone, Debug)]
pub struct Waves {
    pub sizes: Sizes,
    pub soak: Duration,
    pub max_lag: Duration,
    pub gate_command: Option<String>,
}

/// Parses `--waves`: sizes separated by commas, each a count of pairs or a percentage, growing,
/// the last `100%`.
pub fn parse_sizes(text: &str) -> Result<Sizes, String> {
    let mut sizes = Vec::new();
    for part in text.split(',').map(str::trim) {
        let size = match part.strip_suffix('%') {
            Some(p) => match p.parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Size::Percent(p),
                _ => return Err(format!("{part:?}: a share of the fleet from 1% to 100%")),
            },
            None => match part.parse::<usize>() {
                Ok(n) if n > 0 => Size::Pairs(n),
                _ => return Err(format!("{part:?}: a number of pairs (1 or more) or a share (25%)")),
            },
        };
        sizes.push(size);
    }
    if sizes.last() != Some(&Size::Percent(100)) {
        return Err("the last wave is 100% (every pair): e.g. --waves 1,25%,100%".into());
    }
    Ok(Sizes(sizes))
}

/// The waves of `pairs`, in the file's order, as lists of pair indices: each wave brings the count
/// of pairs on green to its size (`done` are on green already), stretched to the end of a group.
fn plan(pairs: &[Pair], done: &[bool], sizes: &[Size]) -> Vec<Vec<usize>> {
    let total = pairs.len();
    // Groups in the order of their first pair; a group with any pair on green counts as started.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| g == p.group()) {
            Some((_, members)) => members.push(i),
            None => groups.push((p.group().to_owned(), vec![i])),
        }
    }
    let mut on = done.iter().filter(|d| **d).count();
    let mut waves = Vec::new();
    let mut left = groups.into_iter().map(|(_, m)| m.into_iter().filter(|i| !done[*i]).collect::<Vec<_>>()).filter(|m| !m.is_empty());
    let mut pending: Option<Vec<usize>> = left.next();
    for size in sizes {
        let target = match *size {
            Size::Pairs(n) => n.min(total),
            Size::Percent(p) => (total * usize::from(p)).div_ceil(100),
        };
        let mut wave = Vec::new();
        while on < target {
            let Some(group) = pending.take() else { break };
            on += group.len();
            wave.extend(group);
            pending = left.next();
        }
        if !wave.is_empty() {
            waves.push(wave);
        }
    }
    waves
}

/// Runs the waves: one decision each, a soak after each but the last.
pub(super) async fn run(file: &FleetFile, args: &CutoverArgs, waves: &Waves) -> Result<i32, Error> {
    let before: Vec<Traffic> = futures_util::future::join_all(file.pairs.iter().map(traffic)).await;
    let unsettled: Vec<&str> = file.pairs.iter().zip(&before).filter(|(_, t)| **t == Traffic::Unsettled).map(|(p, _)| p.name.as_str()).collect();
    if !unsettled.is_empty() {
        eprintln!(
            "turnout: pairs {} are between a fence and a settled end (their sidecars' journals finish it when they run): nothing was changed",
            unsettled.join(", ")
        );
        return Ok(EXIT_FAILED);
    }
    let done: Vec<bool> = before.iter().map(|t| *t == Traffic::On(Side::Green)).collect();
    for (p, on) in file.pairs.iter().zip(&done) {
        if *on {
            println!("[{}] on green already (in its rollback window): counted as done", p.name);
        }
    }
    let planned = plan(&file.pairs, &done, &waves.sizes.0);
    let names = |wave: &[usize]| wave.iter().map(|i| file.pairs[*i].name.clone()).collect::<Vec<_>>();
    println!("fleet {}: {} waves: {}", file.name, planned.len(), planned.iter().map(|w| names(w).join(" ")).collect::<Vec<_>>().join(" | "));
    let mut certificates = Vec::new();
    let mut on: Vec<usize> = (0..file.pairs.len()).filter(|i| done[*i]).collect();
    let mut code = 0;
    for (k, wave) in planned.iter().enumerate() {
        println!("wave {} of {}: {}", k + 1, planned.len(), names(wave).join(", "));
        let sub = FleetFile { pairs: wave.iter().map(|i| file.pairs[*i].clone()).collect(), ..file.clone() };
        let (wave_code, certificate) = decide_once(&sub, &CutoverArgs { waves: None, report: None, ..args.clone() }).await?;
        let mut entry = serde_json::json!({ "wave": k + 1, "pairs": names(wave), "certificate": certificate });
        if wave_code != 0 {
            code = wave_code;
            certificates.push(entry);
            break;
        }
        on.extend(wave.iter().copied());
        if k + 1 < planned.len() && !args.rehearse {
            let switched: Vec<&Pair> = on.iter().map(|i| &file.pairs[*i]).collect();
            let soaked = soak(&switched, waves, &file.name, k + 1).await;
            entry["soak"] = serde_json::json!({ "seconds": waves.soak.as_secs_f64(), "passed": soaked.is_ok(), "failure": soaked.as_ref().err() });
            certificates.push(entry);
            if let Err(why) = soaked {
                println!("wave {}'s soak failed: {why}", k + 1);
                code = EXIT_FAILED;
                break;
            }
            continue;
        }
        certificates.push(entry);
    }
    // Where each pair is, as its sidecar says now (a pair of a committed wave whose switch failed
    // is `unsettled` until its sidecar completes it).
    let now: Vec<Traffic> = futures_util::future::join_all(file.pairs.iter().map(traffic)).await;
    let side = |want: Side| file.pairs.iter().zip(&now).filter(|(_, t)| **t == Traffic::On(want)).map(|(p, _)| p.name.clone()).collect::<Vec<_>>();
    let (on_green, on_blue, elsewhere) = (
        side(Side::Green),
        side(Side::Blue),
        file.pairs.iter().zip(&now).filter(|(_, t)| !matches!(t, Traffic::On(_))).map(|(p, t)| format!("{} ({t})", p.name)).collect::<Vec<_>>(),
    );
    if code == 0 && !elsewhere.is_empty() {
        code = EXIT_FAILED;
    }
    if code == 0 {
        println!("fleet {} cut over in {} waves: every pair is on green", file.name, planned.len());
    } else {
        println!(
            "the fleet stops here: on green {}; on blue {}{} — `turnout fleet rollback` takes back the pairs on green, or run the same command again to go on",
            list(&on_green),
            list(&on_blue),
            if elsewhere.is_empty() { String::new() } else { format!("; not settled {}", elsewhere.join(", ")) }
        );
    }
    if let Some(path) = &args.report {
        let certificate =
            serde_json::json!({ "kind": "fleet-cutover-waves", "fleet": file.name, "on_green": on_green, "on_blue": on_blue, "waves": certificates });
        code = save(path, &certificate).unwrap_or(EXIT_FAILED).max(code);
    }
    Ok(code)
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Watches every pair on green for `waves.soak`, once a second; then the gate command. The first
/// sign of trouble, named.
async fn soak(on: &[&Pair], waves: &Waves, fleet: &str, wave: usize) -> Result<(), String> {
    // A pair just switched begins its window (the reverse stream) a moment after its cutover ends:
    // each is waited for until it is healthy the first time.
    let window_by = Instant::now() + WINDOW_WAIT;
    for p in on {
        while let Err(why) = healthy(p, waves.max_lag).await {
            if Instant::now() >= window_by {
                return Err(format!("pair {}: not healthy within {} s of the switch: {why}", p.name, WINDOW_WAIT.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("soaking {} s: watching {} pairs on green", waves.soak.as_secs(), on.len());
    let until = Instant::now() + waves.soak;
    loop {
        for p in on {
            healthy(p, waves.max_lag).await.map_err(|why| format!("pair {}: {why}", p.name))?;
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(until.saturating_duration_since(Instant::now()))).await;
    }
    if let Some(command) = &waves.gate_command {
        let names: Vec<&str> = on.iter().map(|p| p.name.as_str()).collect();
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("TURNOUT_FLEET", fleet)
            .env("TURNOUT_WAVE", wave.to_string())
            .env("TURNOUT_PAIRS_ON_GREEN", names.join(" "))
            .output()
            .await
            .map_err(|e| format!("the gate command {command:?} could not run: {e}"))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(format!("the gate command {command:?} exited {}: {}", out.status.code().unwrap_or(-1), said.trim()));
        }
    }
    println!("wave {wave} soaked: every pair on green is healthy");
    Ok(())
}

/// One look at a pair on green: the first thing wrong, if any.
async fn healthy(pair: &Pair, max_lag: Duration) -> Result<(), String> {
    let s = pair_status(pair).await.ok_or("its sidecar cannot be reached")?;
    if s["traffic"] != "green" || s["direction"] != "reverse" {
        return Err(format!("it is not in its rollback window (traffic {}, direction {})", s["traffic"], s["direction"]));
    }
    if s["phase"] != "streaming" {
        return Err(format!("its reverse stream is not streaming (phase {})", s["phase"]));
    }
    if let Some(e) = s["last_error"].as_object() {
        return Err(format!("error: {}", e.get("message").and_then(|m| m.as_str()).unwrap_or_default()));
    }
    if let Some((alert, level)) = s["alerts"].as_object().and_then(|a| a.iter().find(|(_, l)| *l != "ok")) {
        return Err(format!("alert {alert} is {level}"));
    }
    match s["lag_seconds"].as_f64() {
        Some(lag) if lag > max_lag.as_secs_f64() => {
            return Err(format!("its reverse stream's lag is {lag:.3} s (over --soak-max-lag {} s)", max_lag.as_secs_f64()))
        }
        Some(_) => {}
        None => return Err("its reverse stream's lag cannot be measured".into()),
    }
    if let Some(blue) = s["rogue_writes"]["blue"].as_object() {
        if let Some(e) = blue.get("error").and_then(|e| e.as_str()) {
            return Err(format!("the watch for writes on blue that are not turnout's fails: {e}"));
        }
        let (seen, acknowledged) = (blue.get("seen").and_then(|v| v.as_u64()).unwrap_or(0), blue.get("acknowledged").and_then(|v| v.as_u64()).unwrap_or(0));
        if seen > acknowledged {
            return Err(format!("{} writes on blue that are not turnout's (turnout rogue-writes)", seen - acknowledged));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(groups: &[Option<&str>]) -> Vec<Pair> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| Pair { name: format!("p{i}"), control: format!("h:{}", 1000 + i), token: None, group: g.map(str::to_owned) })
            .collect()
    }

    #[test]
    fn sizes_are_counts_or_shares_growing_to_every_pair() {
        assert_eq!(parse_sizes("1, 25%,100%"), Ok(Sizes(vec![Size::Pairs(1), Size::Percent(25), Size::Percent(100)])));
        assert!(parse_sizes("1,50%").expect_err("refused").contains("the last wave is 100%"));
        assert!(parse_sizes("0,100%").expect_err("refused").contains("a number of pairs"));
        assert!(parse_sizes("1,120%").expect_err("refused").contains("from 1% to 100%"));
    }

    #[test]
    fn waves_grow_to_their_size_never_split_a_group_and_skip_pairs_on_green() {
        let eight = pairs(&[None; 8]);
        let sizes = parse_sizes("1,25%,100%").expect("sizes").0;
        assert_eq!(plan(&eight, &[false; 8], &sizes), vec![vec![0], vec![1], vec![2, 3, 4, 5, 6, 7]]);
        // A group of three after the first pair: the second wave takes the whole group.
        let grouped = pairs(&[None, Some("s"), Some("s"), None, Some("s"), None]);
        assert_eq!(plan(&grouped, &[false; 6], &parse_sizes("1,2,100%").expect("sizes").0), vec![vec![0], vec![1, 2, 4], vec![3, 5]]);
        // Run again after the first wave: it counts as done.
        let mut done = [false; 8];
        done[0] = true;
        assert_eq!(plan(&eight, &done, &sizes), vec![vec![1], vec![2, 3, 4, 5, 6, 7]]);
    }
}
