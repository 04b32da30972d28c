//! `portway-bench callgrind-diff A.out [B.out] --calls N`: self cost per call by function from
//! callgrind dumps (those the `instructions` suite keeps with `--profile-dir`), A minus B,
//! largest differences first. This is how the gateway's own costs were found: the same call
//! through portway and through the baseline, compared function by function.
//!
//! Written here rather than using `callgrind_annotate` because the one Debian ships (3.19)
//! attributes all self cost to `clone` for these multi-threaded dumps.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

/// Self cost (instructions) per function of one dump.
pub fn self_costs(path: &Path) -> anyhow::Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut costs: HashMap<String, u64> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut current = String::new();
    let mut next_is_call = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("fn=") {
            current = resolve(rest, &mut names);
            next_is_call = false;
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            resolve(rest, &mut names);
        } else if line.starts_with("calls=") {
            // The cost line after `calls=` is the call's inclusive cost, not self cost.
            next_is_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            let cost: u64 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            if next_is_call {
                next_is_call = false;
            } else {
                *costs.entry(current.clone()).or_default() += cost;
            }
        }
    }
    Ok(costs)
}

/// `(12) name` defines id 12, `(12)` refers to it, `name` is plain.
fn resolve(spec: &str, names: &mut HashMap<String, String>) -> String {
    let spec = spec.trim();
    if let Some(rest) = spec.strip_prefix('(')
        && let Some((id, name)) = rest.split_once(')')
    {
        let name = name.trim();
        if name.is_empty() {
            return names.get(id).cloned().unwrap_or_else(|| format!("({id})"));
        }
        names.insert(id.to_string(), name.to_string());
        return name.to_string();
    }
    spec.to_string()
}

/// Prints the report.
pub fn run(a: &Path, b: Option<&Path>, calls: u64, top: usize) -> anyhow::Result<()> {
    let calls = calls.max(1) as f64;
    let a_costs = self_costs(a)?;
    let b_costs = match b {
        Some(b) => self_costs(b)?,
        None => HashMap::new(),
    };
    let total = |m: &HashMap<String, u64>| m.values().sum::<u64>() as f64 / calls;
    println!("total per call: A {:.0}, B {:.0}", total(&a_costs), total(&b_costs));
    let mut names: Vec<&String> = a_costs.keys().chain(b_costs.keys()).collect();
    names.sort();
    names.dedup();
    let get = |m: &HashMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0) as f64 / calls;
    names.sort_by(|x, y| {
        let dx = get(&a_costs, x) - get(&b_costs, x);
        let dy = get(&a_costs, y) - get(&b_costs, y);
        dy.total_cmp(&dx)
    });
    println!("{:>9} {:>9} {:>9}  function", "A-B", "A", "B");
    let line = |k: &String| {
        let (x, y) = (get(&a_costs, k), get(&b_costs, k));
        println!("{:>9.0} {x:>9.0} {y:>9.0}  {}", x - y, k.chars().take(160).collect::<String>());
    };
    names.iter().take(top).for_each(|k| line(k));
    if b.is_some() && names.len() > top {
        println!("...");
        names.iter().rev().take(top / 4).collect::<Vec<_>>().into_iter().rev().for_each(|k| line(k));
    }
    Ok(())
}
