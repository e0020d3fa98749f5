//! The summary of a run, as text or JSON, and the verdict: a run with unexpected answers,
//! errors or an exhausted user pool is flagged, never quietly averaged in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::stats::Stats;
use super::{AuthArgs, Plan};

/// Percentiles reported, as (label, quantile).
const PERCENTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

/// The figures of a run.
#[derive(Debug)]
pub struct Summary {
    doc: Value,
    problems: Vec<String>,
}

impl Summary {
    pub fn new(args: &AuthArgs, plan: &Plan, warmup: &Stats, measured: &Stats) -> Self {
        let secs = (plan.end - plan.measure_from).as_secs_f64();
        let problems = problems(measured, warmup, args.no_step_wait);
        let doc = json!({
            "url": args.url,
            "tls": plan.target.is_tls(),
            "mode": if args.rate.is_some() { "open" } else { "closed" },
            "rate": args.rate,
            "connections": args.connections,
            "warmup_secs": args.warmup,
            "measured_secs": secs,
            "valid_users": plan.pool.valid_users(),
            "wrong_users": plan.pool.wrong_users(),
            "wrong_ratio": args.wrong_ratio,
            "measured": stats_json(measured, secs),
            "warmup": stats_json(warmup, args.warmup as f64),
            "ok": problems.is_empty(),
            "problems": problems,
        });
        Self { doc, problems }
    }

    /// Whether the run showed no problem.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> String {
        self.doc.to_string()
    }

    pub fn to_text(&self) -> String {
        let doc = &self.doc;
        let m = &doc["measured"];
        let count = |key: &str| m[key].as_u64().unwrap_or_default();
        let float = |v: &Value| v.as_f64().unwrap_or_default();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{} loop, {} connections, {:.0} s measured after {} s warm-up",
            doc["mode"].as_str().unwrap_or_default(),
            doc["connections"],
            float(&doc["measured_secs"]),
            doc["warmup_secs"],
        );
        let open = doc["mode"] == "open";
        let rows = [
            (
                "requests sent",
                "sent",
                format!("{:.1}/s", float(&m["throughput_rps"])),
                true,
            ),
            (
                "  allow",
                "allow",
                format!("{:.1}/s accepted", float(&m["accepted_per_sec"])),
                true,
            ),
            (
                "  deny (wrong code)",
                "deny",
                labels(&m["deny_statuses"]),
                true,
            ),
            (
                "  valid code DENIED",
                "unexpected_deny",
                String::new(),
                true,
            ),
            (
                "  wrong code ALLOWED",
                "unexpected_allow",
                String::new(),
                true,
            ),
            (
                "  HTTP errors",
                "http_errors",
                labels(&m["http_statuses"]),
                true,
            ),
            (
                "  no response",
                "transport_errors",
                labels(&m["transport_kinds"]),
                true,
            ),
            ("user pool ran out", "pool_exhausted", String::new(), true),
            (
                "waited for connection",
                "late_sends",
                "latency from schedule".into(),
                open,
            ),
            ("never sent (behind)", "unsent_backlog", String::new(), open),
        ];
        for (label, key, note, shown) in rows {
            if shown {
                let _ = writeln!(out, "{label:<22} {:>10}  {note}", count(key));
            }
        }
        let lat = &m["latency_ms"];
        let _ = write!(out, "latency ms            ");
        for label in PERCENTILES.iter().map(|(l, _)| *l).chain(["max", "mean"]) {
            let _ = write!(out, " {label} {:.3}", float(&lat[label]));
        }
        let w = &doc["warmup"];
        let _ = writeln!(
            out,
            "\nwarm-up: {} requests, {} unexpected, {} errors",
            w["sent"],
            w["unexpected_deny"].as_u64().unwrap_or_default()
                + w["unexpected_allow"].as_u64().unwrap_or_default(),
            w["http_errors"].as_u64().unwrap_or_default()
                + w["transport_errors"].as_u64().unwrap_or_default(),
        );
        if self.problems.is_empty() {
            out.push_str("RESULT: OK\n");
        } else {
            out.push_str("RESULT: PROBLEMS\n");
            for p in &self.problems {
                let _ = writeln!(out, "  - {p}");
            }
        }
        out
    }
}

fn stats_json(s: &Stats, secs: f64) -> Value {
    let h = &s.latency_us;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut latency: BTreeMap<&str, Value> = PERCENTILES
        .iter()
        .map(|(label, q)| (*label, json!(ms(h.value_at_quantile(*q)))))
        .collect();
    latency.insert("max", json!(ms(h.max())));
    latency.insert("mean", json!(h.mean() / 1000.0));
    latency.insert("count", json!(h.len()));
    let per_sec = |count: u64| if secs > 0.0 { count as f64 / secs } else { 0.0 };
    json!({
        "sent": s.sent,
        "allow": s.allow,
        "deny": s.deny,
        "unexpected_deny": s.unexpected_deny,
        "unexpected_allow": s.unexpected_allow,
        "http_errors": s.http_errors,
        "transport_errors": s.transport_errors,
        "pool_exhausted": s.exhausted,
        "late_sends": s.late_sends,
        "unsent_backlog": s.unsent_backlog,
        "deny_statuses": s.deny_statuses,
        "http_statuses": s.http_statuses,
        "transport_kinds": s.transport_kinds,
        "throughput_rps": per_sec(s.sent),
        "accepted_per_sec": per_sec(s.allow),
        "latency_ms": latency,
    })
}

fn labels(map: &Value) -> String {
    map.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {}", v.as_u64().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .map(|s| format!("[{s}]"))
        .unwrap_or_default()
}

fn problems(m: &Stats, w: &Stats, no_step_wait: bool) -> Vec<String> {
    let mut p = Vec::new();
    if m.unexpected_deny > 0 {
        let hint = if no_step_wait {
            " (with --no-step-wait, a run started in the step an earlier run used replays its codes)"
        } else {
            ""
        };
        p.push(format!(
            "SERVER: {} valid codes were denied{hint}",
            m.unexpected_deny
        ));
    }
    if m.unexpected_allow > 0 {
        p.push(format!(
            "SERVER: {} wrong codes were allowed",
            m.unexpected_allow
        ));
    }
    if m.http_errors > 0 {
        p.push(format!(
            "{} HTTP error responses {:?}",
            m.http_errors, m.http_statuses
        ));
    }
    if m.transport_errors > 0 {
        p.push(format!(
            "{} requests got no response {:?}",
            m.transport_errors, m.transport_kinds
        ));
    }
    if m.exhausted > 0 {
        p.push(format!(
            "the user pool ran out {} times: every valid user was used in the step; provision \
             about rate x 30 users (plus the wrong-code pool)",
            m.exhausted
        ));
    }
    if m.unsent_backlog > 0 {
        p.push(format!(
            "{} scheduled requests were never sent: the server (or too few --connections) could \
             not keep up with the rate",
            m.unsent_backlog
        ));
    }
    if m.sent == 0 {
        p.push("no request was sent in the measured period".to_owned());
    }
    if w.unexpected() > 0 || w.errors() > 0 || w.exhausted > 0 {
        p.push(format!(
            "during warm-up: {} unexpected answers, {} errors, user pool ran out {} times",
            w.unexpected(),
            w.errors(),
            w.exhausted
        ));
    }
    p
}
