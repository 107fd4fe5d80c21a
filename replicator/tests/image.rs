//! The container image: `./scripts/image` builds it (a turnout binary + Containerfile) with podman or
//! docker, and `turnout check` runs inside it against real servers on the host. The test packages the
//! binary the test build already made (`TURNOUT_IMAGE_BINARY`): the image's own build compiles a release
//! binary, which on a fresh 2-core machine takes longer than the rest of the suite. Skipped, saying so,
//! only where neither podman nor docker exists (scripts/test installs podman on Debian).

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("..")
}

/// podman, else docker — a docker CLI counts only when its daemon answers (`docker info`), as in
/// scripts/image.
fn engine() -> Option<&'static str> {
    let works = |e: &str, arg: &str| Command::new(e).arg(arg).output().is_ok_and(|o| o.status.success());
    if works("podman", "--version") {
        Some("podman")
    } else if works("docker", "info") {
        Some("docker")
    } else {
        None
    }
}

/// `engine run` with the options that work on this kind of host (podman: runc, cgroupfs).
fn run(engine: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(engine);
    if engine == "podman" {
        cmd.arg("--cgroup-manager=cgroupfs").args(["run", "--runtime", "runc"]);
    } else {
        cmd.arg("run");
    }
    cmd.args(["--rm", "--network", "host"]).args(args).output().expect("container run")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn the_image_runs_turnout_check_against_servers_on_the_host_as_a_non_root_user() {
    let Some(engine) = engine() else {
        eprintln!("SKIPPED: neither podman nor a docker with a running daemon is here, so the container image cannot be built (apt-get install -y podman runc mmdebstrap)");
        return;
    };
    let tag = "localhost/turnout:test";
    // A clean environment: variables the test runner sets (CARGO_*, RUST*) would change build-script
    // fingerprints and rebuild the release binary's dependencies on every run.
    let keep = ["PATH", "HOME", "USER", "LANG", "TMPDIR", "CARGO_HOME", "RUSTUP_HOME", "CARGO_TARGET_DIR", "TURNOUT_CACHE_DIR"];
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| keep.contains(&k.as_str())).collect();
    let binary = env!("CARGO_BIN_EXE_turnout");
    let built = tokio::task::spawn_blocking(move || {
        Command::new(repo().join("scripts/image")).env_clear().envs(env).env("TURNOUT_IMAGE", tag).env("TURNOUT_IMAGE_BINARY", binary).output()
    })
    .await
    .expect("join")
    .expect("scripts/image");
    assert!(built.status.success(), "scripts/image failed:\n{}", text(&built));

    let (blue, green, db) = common::pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("turnout.toml"),
        format!("[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[state]\ndir = \"/var/lib/turnout/state\"\n", blue.url(&db), green.url(&db)),
    )
    .expect("config");
    std::fs::set_permissions(dir.path().join("turnout.toml"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let volume = format!("{}:/etc/turnout:ro", dir.path().display());
    let check = tokio::task::spawn_blocking(move || run(engine, &["-v", &volume, tag, "check", "--config", "/etc/turnout/turnout.toml"])).await.expect("join");
    let out = text(&check);
    assert_eq!(check.status.code(), Some(0), "turnout check inside the image:\n{out}");
    assert!(out.contains("result: ready"), "{out}");
    // Not root; pg_dump for the schema copy is inside; the health check asks /healthz.
    let user = run(engine, &["--entrypoint", "id", tag, "-u"]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001", "{}", text(&user));
    let pg_dump = run(engine, &["--entrypoint", "pg_dump", tag, "--version"]);
    assert!(String::from_utf8_lossy(&pg_dump.stdout).contains("pg_dump (PostgreSQL) 15"), "{}", text(&pg_dump));
    let inspect = Command::new(engine).args(["image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag]).output().expect("inspect");
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("/healthz"), "{}", text(&inspect));
}
