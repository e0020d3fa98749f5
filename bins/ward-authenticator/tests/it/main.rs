//! The `ward-authenticator` binary against a strict fake of the device endpoints, over real TLS.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

mod fake;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake::{DEVICE_ID, FakeWard, NUMBER};
use ward_proto::device::{Decision, KeyAlgorithm};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

struct Device {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cfg/state.json");
        Self { _dir: dir, state }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward-authenticator"))
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    async fn activate(&self, ward: &FakeWard, extra: &[&str]) -> Run {
        let link = ward.link(Some(&ward.pin));
        let mut args = vec!["activate", link.as_str()];
        args.extend_from_slice(extra);
        self.run(&args).await
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn activate_with_pin_then_list() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    let run = device.activate(&ward, &["--name", "test box"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains(DEVICE_ID), "{}", run.stdout);

    assert_eq!(mode(&device.state), 0o600);
    assert_eq!(mode(device.state.parent().unwrap()), 0o700);
    let activation = ward.state.lock().unwrap().activation.clone().unwrap();
    assert_eq!(activation.name, "test box");
    assert_eq!(activation.algorithm, KeyAlgorithm::Ed25519);
    assert_eq!(activation.platform, std::env::consts::OS);
    let saved = std::fs::read_to_string(&device.state).unwrap();
    assert!(saved.contains(&ward.pin), "the pin is kept");

    let run = device.run(&["list"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("alice on https://localhost:"));
    assert!(run.stdout.contains(DEVICE_ID));
    assert!(run.stdout.contains("ed25519"));
}

#[tokio::test]
async fn wrong_pin_and_wrong_code_store_nothing() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    let wrong = "sha256:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
    let run = device.run(&["activate", &ward.link(Some(wrong))]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("pinned key"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(ward.state.lock().unwrap().activation.is_none());

    let link = ward.link(Some(&ward.pin)).replace("ACT-1234", "WRONG");
    let run = device.run(&["activate", &link]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("invalid or used"), "{}", run.stderr);
    assert!(!device.state.exists());

    // Without a pin or CA, the system roots do not know the fake CA.
    let run = device.run(&["activate", &ward.link(None)]).await;
    assert!(!run.ok);
    assert!(!device.state.exists());
}

#[tokio::test]
async fn activate_with_ca_file_and_p256() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    let ca = device
        .state
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("ca.pem");
    std::fs::write(&ca, &ward.ca_pem).unwrap();
    let run = device
        .run(&[
            "activate",
            &ward.link(None),
            "--ca",
            ca.to_str().unwrap(),
            "--algorithm",
            "p256",
        ])
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        ward.state.lock().unwrap().device.clone().unwrap().0,
        KeyAlgorithm::P256
    );

    ward.push("TX-P256", false, false);
    let run = device.run(&["answer", "TX-P256", "deny"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "denied");
    let answers = &ward.state.lock().unwrap().answers;
    assert_eq!(answers[0].decision, Decision::Deny);
}

#[tokio::test]
async fn pending_lists_requests_and_returns_early() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    assert!(device.activate(&ward, &[]).await.ok);
    ward.push("TX1", true, false);
    ward.push("TX2", false, false);
    ward.push("TX-BAD", false, true);

    let started = Instant::now();
    let run = device.run(&["pending", "--json", "--wait", "20"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(8), "returned early");
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "the tampered request is left out: {list:?}");
    assert_eq!(list[0]["txid"], "TX1");
    assert_eq!(list[0]["username"], "alice");
    assert_eq!(list[0]["application"], "VPN");
    assert_eq!(list[0]["ip"], "203.0.113.5");
    assert_eq!(list[0]["number_required"], true);
    assert_eq!(list[1]["number_required"], false);
    assert!(run.stderr.contains("TX-BAD"), "{}", run.stderr);

    let run = device.run(&["pending"]).await;
    assert!(run.ok);
    assert!(run.stdout.contains("TX1") && run.stdout.contains("number required"));
}

#[tokio::test]
async fn pending_with_nothing_waits_then_prints_an_empty_list() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    assert!(device.activate(&ward, &[]).await.ok);
    let started = Instant::now();
    let run = device.run(&["pending", "--json", "--wait", "1"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(run.stdout.trim(), "[]");
}

#[tokio::test]
async fn answer_with_number_is_signed_over_the_shown_context() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    assert!(device.activate(&ward, &[]).await.ok);
    ward.push("TX1", true, false);

    let run = device.run(&["answer", "TX1", "approve"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("--number"), "{}", run.stderr);

    let run = device
        .run(&["answer", "TX1", "approve", "--number", NUMBER])
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "approved");
    {
        let state = ward.state.lock().unwrap();
        let answer = &state.answers[0];
        assert_eq!(answer.decision, Decision::Approve);
        assert_eq!(answer.number.as_deref(), Some(NUMBER));
        assert!(state.pending.is_empty());
        // Each command opened its own stream with a fresh, single-use nonce.
        assert_eq!(state.streams_opened, 2);
    }

    // A wrong number is recorded (as a denial): the answer itself succeeded.
    ward.push("TX2", true, false);
    let run = device
        .run(&["answer", "TX2", "approve", "--number", "7"])
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "denied");
    assert!(run.stderr.contains("number"), "{}", run.stderr);

    // Answering twice is refused by the server: non-zero, with its message.
    ward.push("TX2", true, false);
    let run = device.run(&["answer", "TX2", "deny"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("already answered"), "{}", run.stderr);
}

#[tokio::test]
async fn fraud_and_refusals() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    assert!(device.activate(&ward, &[]).await.ok);
    ward.push("TX1", true, false);
    ward.push("TX-BAD", false, true);

    let run = device.run(&["answer", "TX-BAD", "approve"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("refusing"), "{}", run.stderr);

    let run = device.run(&["answer", "NOPE", "deny", "--wait", "1"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no pending request NOPE"),
        "{}",
        run.stderr
    );

    // Fraud needs no number.
    let run = device.run(&["answer", "TX1", "fraud"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "fraud");
    assert_eq!(ward.state.lock().unwrap().answers.len(), 1);
}

#[tokio::test]
async fn watch_refuses_without_a_terminal_and_state_must_be_private() {
    let ward = FakeWard::start().await;
    let device = Device::new();
    assert!(device.activate(&ward, &[]).await.ok);
    let run = device.run(&["watch"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("terminal"), "{}", run.stderr);

    std::fs::set_permissions(&device.state, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = device.run(&["list"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
}

#[tokio::test]
async fn totp_import_and_code() {
    let device = Device::new();
    let run = device
        .run(&[
            "import-totp",
            "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME",
        ])
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(mode(&device.state), 0o600);
    let run = device.run(&["code"]).await;
    assert!(run.ok, "{}", run.stderr);
    let code = run.stdout.split_whitespace().next().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(run.stdout.contains("ACME:alice"));
    let run = device.run(&["list"]).await;
    assert!(run.stdout.contains("ACME:alice"));
    assert!(!run.stdout.contains("GEZDGNBV"), "secrets are never listed");
    let run = device.run(&["code", "nomatch"]).await;
    assert!(!run.ok);
}
