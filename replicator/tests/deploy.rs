//! The deployment examples are consistent with turnout itself: every Kubernetes manifest parses, the
//! turnout.toml in the ConfigMap loads with the real config loader (each `${VAR}` supplied by the
//! Secret the sidecar reads), the sidecar's mounts, probes and scrape port match that configuration,
//! the cutover Job sends a request the API accepts to the Service that exists, and docker-compose's
//! MariaDB pair has the binlog settings turnout checks for.

use serde::Deserialize;
use serde_yaml::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use turnout::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("..")
}

/// Every document of every manifest in `deploy/kubernetes`.
fn manifests() -> Vec<(String, Value)> {
    let docs = manifests_in("deploy/kubernetes");
    assert!(docs.len() >= 6, "expected the Secret, ConfigMap, claim, Deployment, Service and Job: {}", docs.len());
    docs
}

/// Every document of every manifest file in `dir` (not its subdirectories).
fn manifests_in(dir: &str) -> Vec<(String, Value)> {
    let dir = repo().join(dir);
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("manifests").map(|e| e.expect("entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("manifest");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            assert!(value["apiVersion"].is_string() && value["kind"].is_string() && value["metadata"]["name"].is_string(), "{name}: {value:?}");
            docs.push((name, value));
        }
    }
    docs
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    docs.iter().map(|(_, v)| v).find(|v| v["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_kubernetes_example_runs_turnout_with_a_configuration_it_accepts() {
    let docs = manifests();
    let secret = kind(&docs, "Secret");
    let secrets: HashMap<String, String> =
        secret["stringData"].as_mapping().expect("stringData").iter().map(|(k, v)| (text(k).to_owned(), text(v).to_owned())).collect();
    let config_map = kind(&docs, "ConfigMap");
    let toml = text(&config_map["data"]["turnout.toml"]);
    // Every ${VAR} must come from the Secret: the loader fails on an undefined one.
    let config = Config::parse(toml, |name| secrets.get(name).cloned()).unwrap_or_else(|e| panic!("turnout.toml in the ConfigMap: {e}"));
    assert!(config.cutover.token.is_some(), "the API listens on the pod's address: a token is required");

    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let containers = pod["spec"]["containers"].as_sequence().expect("containers");
    let turnout = containers.iter().find(|c| c["name"] == "turnout").expect("a turnout container");
    let args: Vec<&str> = turnout["args"].as_sequence().expect("args").iter().map(text).collect();
    assert_eq!(args[0], "run");
    let config_path = args[args.iter().position(|a| *a == "--config").expect("--config") + 1];
    let mounts = turnout["volumeMounts"].as_sequence().expect("mounts");
    let mount = |path: &str| mounts.iter().find(|m| m["mountPath"] == path).unwrap_or_else(|| panic!("nothing mounted at {path}"));
    let config_mount = mount(config_path);
    assert_eq!(config_mount["subPath"], "turnout.toml");
    let volumes = pod["spec"]["volumes"].as_sequence().expect("volumes");
    let volume = |name: &Value| volumes.iter().find(|v| v["name"] == *name).unwrap_or_else(|| panic!("no volume {name:?}"));
    assert_eq!(volume(&config_mount["name"])["configMap"]["name"], config_map["metadata"]["name"]);
    // state.dir is on the persistent volume.
    let state = mount(config.state.dir.to_str().expect("state.dir"));
    assert!(volume(&state["name"])["persistentVolumeClaim"]["claimName"] == kind(&docs, "PersistentVolumeClaim")["metadata"]["name"]);
    // pgbouncer's configuration file is shared with the pgbouncer container, so the switch reaches it.
    let ini = config.cutover.pgbouncer.as_ref().and_then(|p| p.config_file.clone()).expect("cutover.pgbouncer.config_file");
    let ini_dir = ini.parent().expect("dir").to_str().expect("utf-8");
    let shared = mount(ini_dir);
    let pgbouncer = containers.iter().find(|c| c["name"] == "pgbouncer").expect("pgbouncer container");
    assert!(pgbouncer["volumeMounts"].as_sequence().expect("mounts").iter().any(|m| m["name"] == shared["name"] && m["mountPath"] == ini_dir));
    // The Secret reaches the environment the ${VAR}s are read from.
    assert!(turnout["envFrom"].as_sequence().expect("envFrom").iter().any(|e| e["secretRef"]["name"] == secret["metadata"]["name"]));
    // Probes and scraping use turnout's HTTP port and paths.
    let port: u16 = config.http.listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let ports = turnout["ports"].as_sequence().expect("ports");
    assert!(ports.iter().any(|p| p["name"] == "http" && p["containerPort"].as_u64() == Some(u64::from(port))));
    assert_eq!(turnout["readinessProbe"]["httpGet"]["path"], "/healthz");
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(text(&annotations["prometheus.io/port"]), port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}

#[test]
fn the_cutover_job_posts_a_request_the_api_accepts_to_the_sidecars_service() {
    let docs = manifests();
    let job = kind(&docs, "Job");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let script = container["command"].as_sequence().expect("command").iter().map(text).collect::<Vec<_>>().join(" ");
    let body = script.split("-d '").nth(1).and_then(|rest| rest.split('\'').next()).expect("a -d '<json>' body");
    let request: turnout::cutover::Request = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert!(request.when_lag_ms > 0 && !request.dry_run);
    assert!(script.contains("Authorization: Bearer $TURNOUT_TOKEN"), "{script}");
    let token = &container["env"][0]["valueFrom"]["secretKeyRef"];
    assert_eq!(token["name"], kind(&docs, "Secret")["metadata"]["name"]);
    assert!(kind(&docs, "Secret")["stringData"][text(&token["key"])].is_string());
    let service = kind(&docs, "Service");
    let port = service["spec"]["ports"][0]["port"].as_u64().expect("port");
    assert!(script.contains(&format!("http://{}:{port}", text(&service["metadata"]["name"]))), "{script}");
}

#[test]
fn the_compose_mariadb_pair_has_the_binlog_settings_turnout_checks() {
    let compose: Value = serde_yaml::from_str(&std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose")).expect("yaml");
    let mut ids = Vec::new();
    for name in ["mariadb-blue", "mariadb-green"] {
        let service = &compose["services"][name];
        let flags: Vec<&str> = service["command"].as_sequence().unwrap_or_else(|| panic!("{name}: command")).iter().map(text).collect();
        for wanted in ["--log-bin=mysql-bin", "--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"] {
            assert!(flags.contains(&wanted), "{name} lacks {wanted}");
        }
        ids.push(flags.iter().find_map(|f| f.strip_prefix("--server-id=")).unwrap_or_else(|| panic!("{name}: server id")).to_owned());
        for volume in service["volumes"].as_sequence().expect("volumes").iter().map(text) {
            let host = volume.split(':').next().expect("host path");
            assert!(repo().join(host).exists(), "{name}: {host} does not exist");
        }
    }
    assert_ne!(ids[0], ids[1], "blue and green need distinct server ids");
}

/// `${VAR:-default}` and `${VAR}` of a compose file, resolved from defaults only (as on a machine that
/// sets none of them).
fn compose_default(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).expect("closing brace");
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_compose_turnout_service_loads_its_configuration_and_shares_pgbouncers_config_volume() {
    let compose: Value = serde_yaml::from_str(&std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose")).expect("yaml");
    let services = &compose["services"];
    let turnout = &services["turnout"];
    let args: Vec<&str> = turnout["command"].as_sequence().expect("command").iter().map(text).collect();
    assert_eq!(args[0], "run");
    let config_path = args[args.iter().position(|a| *a == "--config").expect("--config") + 1];
    let volumes: Vec<(String, String)> = turnout["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| {
            let mut parts = text(v).split(':');
            (parts.next().expect("source").to_owned(), parts.next().expect("target").to_owned())
        })
        .collect();
    let (file, _) = volumes.iter().find(|(_, target)| target == config_path).expect("the configuration is mounted");
    let environment: HashMap<String, String> =
        turnout["environment"].as_mapping().expect("environment").iter().map(|(k, v)| (text(k).to_owned(), compose_default(text(v)))).collect();
    let toml = std::fs::read_to_string(repo().join(file)).expect("turnout.toml");
    let config = Config::parse(&toml, |name| environment.get(name).cloned()).unwrap_or_else(|e| panic!("{file}: {e}"));
    // state.dir on a named volume; pgbouncer's configuration on a volume the pgbouncer service mounts
    // at the same place, so the switch rewrites the file pgbouncer reads.
    let named = compose["volumes"].as_mapping().expect("named volumes");
    let on_volume =
        |path: &str| volumes.iter().find(|(_, target)| target == path).map(|(source, _)| source.clone()).unwrap_or_else(|| panic!("nothing at {path}"));
    assert!(named.contains_key(Value::from(on_volume(config.state.dir.to_str().expect("state.dir")))));
    let ini = config.cutover.pgbouncer.as_ref().and_then(|p| p.config_file.clone()).expect("config_file");
    let ini_dir = ini.parent().expect("dir").to_str().expect("utf-8");
    let shared = on_volume(ini_dir);
    let pgbouncer_volumes: Vec<&str> = services["pgbouncer"]["volumes"].as_sequence().expect("pgbouncer volumes").iter().map(text).collect();
    assert!(pgbouncer_volumes.contains(&format!("{shared}:{ini_dir}").as_str()), "{pgbouncer_volumes:?}");
    // Every host turnout connects to is a service of this file, and the API port is published.
    let admin = config.cutover.pgbouncer.as_ref().and_then(|p| p.admin_url.as_ref()).expect("admin_url").expose().to_owned();
    for url in [config.source.url.expose(), config.target.url.expose(), &admin] {
        let host = url.split('@').nth(1).and_then(|rest| rest.split(':').next()).expect("host");
        assert!(services[host].is_mapping(), "{host} is not a service");
    }
    let port = config.http.listen.rsplit(':').next().expect("port");
    assert!(turnout["ports"].as_sequence().expect("ports").iter().any(|p| text(p).ends_with(&format!(":{port}"))));
    // pgbouncer keeps one set of credentials: green must accept blue's.
    assert_eq!(
        compose_default(text(&services["green"]["environment"]["POSTGRES_PASSWORD"])),
        compose_default(text(&services["blue"]["environment"]["POSTGRES_PASSWORD"]))
    );
}

/// The fleet example: its fleet.toml loads with the real loader (every `${VAR}` from its Secret),
/// names the etcd cluster etcd.yaml runs and the same one the sidecar example's `[fleet.etcd]`
/// names, and its Job runs `turnout fleet cutover` on that file as mounted.
#[test]
fn the_fleet_example_coordinates_sidecars_through_the_etcd_it_runs() {
    let docs = manifests_in("deploy/kubernetes/fleet");
    let secrets: HashMap<String, String> =
        kind(&docs, "Secret")["stringData"].as_mapping().expect("stringData").iter().map(|(k, v)| (text(k).to_owned(), text(v).to_owned())).collect();
    let toml = text(&kind(&docs, "ConfigMap")["data"]["fleet.toml"]);
    let fleet = turnout::fleet::config::FleetFile::parse(toml, |name| secrets.get(name).cloned()).unwrap_or_else(|e| panic!("fleet.toml: {e}"));
    assert!(fleet.pairs.len() >= 2 && fleet.pairs.iter().all(|p| p.token.is_some()), "{fleet:?}");
    // The cluster etcd.yaml runs: its StatefulSet's members through its headless Service.
    let set = kind(&docs, "StatefulSet");
    let (name, replicas) = (text(&set["metadata"]["name"]), set["spec"]["replicas"].as_u64().expect("replicas"));
    let members: Vec<String> = (0..replicas).map(|i| format!("http://{name}-{i}.{}:2379", text(&set["spec"]["serviceName"]))).collect();
    assert_eq!(fleet.etcd.endpoints, members);
    // The sidecar example votes in the same cluster.
    let sidecar = kind(&manifests(), "ConfigMap")["data"]["turnout.toml"].clone();
    let secrets_of_sidecar: HashMap<String, String> =
        kind(&manifests(), "Secret")["stringData"].as_mapping().expect("stringData").iter().map(|(k, v)| (text(k).to_owned(), text(v).to_owned())).collect();
    let config = Config::parse(text(&sidecar), |name| secrets_of_sidecar.get(name).cloned()).expect("sidecar config");
    assert_eq!(config.fleet.etcd.as_ref().map(|e| e.endpoints.clone()), Some(members));
    // The Job runs the coordinator on the mounted file.
    let container = &kind(&docs, "Job")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_sequence().expect("args").iter().map(text).collect();
    let file = args[args.iter().position(|a| *a == "--fleet").expect("--fleet") + 1];
    assert_eq!(args[0], "fleet");
    assert!(args.contains(&"cutover") && args.contains(&"--when-lag"), "{args:?}");
    assert!(container["volumeMounts"].as_sequence().expect("mounts").iter().any(|m| m["mountPath"] == file && m["subPath"] == "fleet.toml"));
}
