//! `docker/`: the compose file read as YAML with the services, ports and
//! volumes the configuration expects, and the Dockerfile's run steps (the
//! entry point with its configuration, the health check) executed here
//! against the test cluster. No container engine is needed.

use super::yaml::{self, Node};
use super::{assert_valid, repo, scratch};
use crate::support::spawn::free_port;
use crate::support::{BinProxy, Cluster};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn docker_config() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("docker/proxy.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn value<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let (section, key) = path.split_once('.').unwrap();
    &t[section][key]
}

fn port_of(addr: &toml::Value) -> String {
    addr.as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

/// Dockerfile instructions, continuation lines joined, comments dropped.
fn instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

fn json_array(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON array: {text}: {e}"))
}

#[test]
fn the_docker_configuration_passes_check_config() {
    assert_valid(&repo().join("docker/proxy.toml"));
}

#[test]
fn compose_runs_postgres_and_ddlguard_with_the_configurations_ports_and_volume() {
    let text = std::fs::read_to_string(repo().join("docker/compose.yml")).unwrap();
    let doc = yaml::parse(&text).unwrap_or_else(|e| panic!("docker/compose.yml: {e}"));
    let services = doc.get("services").expect("services");
    let pg = services.get("postgres").expect("a postgres service");
    assert!(pg
        .get("image")
        .and_then(Node::str)
        .unwrap()
        .starts_with("postgres:"));
    let check = pg.get("healthcheck").and_then(|h| h.get("test")).unwrap();
    assert!(
        check.strings().join(" ").contains("pg_isready"),
        "{check:?}"
    );

    let dg = services.get("ddlguard").expect("a ddlguard service");
    let build = dg.get("build").unwrap();
    let context = repo()
        .join("docker")
        .join(build.get("context").and_then(Node::str).unwrap());
    let dockerfile = build.get("dockerfile").and_then(Node::str).unwrap();
    assert!(
        context.join(dockerfile).exists(),
        "{dockerfile} from {context:?}"
    );
    assert!(
        context.join("Cargo.toml").exists(),
        "the context is the repository"
    );
    let depends = dg
        .get("depends_on")
        .and_then(|d| d.get("postgres"))
        .unwrap();
    assert_eq!(
        depends.get("condition").and_then(Node::str),
        Some("service_healthy")
    );

    let config = docker_config();
    assert_eq!(value(&config, "upstream.host").as_str(), Some("postgres"));
    let ports = dg.get("ports").unwrap().strings();
    for key in ["server.listen", "admin.http_listen"] {
        let port = port_of(value(&config, key));
        assert!(
            ports
                .iter()
                .any(|p| p.ends_with(&format!(":{port}:{port}"))),
            "{key} port {port} is published: {ports:?}"
        );
    }
    let volumes = dg.get("volumes").unwrap().strings();
    assert!(volumes.contains(&"./proxy.toml:/etc/ddlguard/proxy.toml:ro".to_string()));
    let store = value(&config, "usage.store").as_str().unwrap();
    let store_dir = std::path::Path::new(store.strip_prefix("sqlite:").unwrap())
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let named = volumes
        .iter()
        .find_map(|v| v.strip_suffix(&format!(":{store_dir}")))
        .unwrap_or_else(|| panic!("a volume on {store_dir}: {volumes:?}"));
    assert!(doc.get("volumes").and_then(|v| v.get(named)).is_some());
    let env = dg.get("environment").unwrap();
    let upstream_var = value(&config, "upstream.password_env").as_str().unwrap();
    assert!(
        env.get(upstream_var).is_some(),
        "compose sets {upstream_var}"
    );
    let admin_var = config["admin"]["users"][0]["password_env"]
        .as_str()
        .unwrap();
    assert!(env.get(admin_var).is_some(), "compose sets {admin_var}");
}

#[test]
fn the_dockerfile_builds_locked_and_runs_serve_as_a_non_root_user() {
    let steps = instructions();
    let all = |op: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.clone())
            .collect()
    };
    let froms = all("FROM");
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    assert!(
        froms[0].starts_with(&format!("rust:{msrv}")),
        "the builder has Cargo.toml's rust-version {msrv}: {}",
        froms[0]
    );
    assert!(froms[1].starts_with("debian:") && froms[1].contains("slim"));
    assert!(all("RUN")
        .iter()
        .any(|r| r.contains("cargo build --release --locked")));
    for (op, args) in &steps {
        if op == "COPY" && !args.starts_with("--from") {
            let sources: Vec<&str> = args.split_whitespace().collect();
            for src in &sources[..sources.len() - 1] {
                assert!(repo().join(src).exists(), "COPY {src}");
            }
        }
    }
    let user = all("USER");
    assert!(
        user.last()
            .is_some_and(|u| !u.starts_with("root") && !u.starts_with('0')),
        "{user:?}"
    );
    let config = docker_config();
    let mut exposed: Vec<String> = all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    exposed.sort();
    let mut want = vec![
        port_of(value(&config, "server.listen")),
        port_of(value(&config, "admin.http_listen")),
    ];
    want.sort();
    assert_eq!(exposed, want);
    let mut command = json_array(&all("ENTRYPOINT")[0]);
    command.extend(json_array(&all("CMD")[0]));
    assert_eq!(
        command,
        ["ddlguard", "serve", "--config", "/etc/ddlguard/proxy.toml"]
    );
    assert!(all("COPY").contains(&"docker/proxy.toml /etc/ddlguard/proxy.toml".to_string()));
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for needed in ["src", "Cargo.toml", "Cargo.lock", "benches", "tests"] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            "{needed} is ignored"
        );
    }
    assert!(ignore.lines().any(|l| l.trim() == "target"));
}

/// Kills the child when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthcheck(shell_command: &[String], port: u16) -> bool {
    let args: Vec<String> = shell_command
        .iter()
        .map(|a| a.replace("/9187", &format!("/{port}")))
        .collect();
    Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the health check")
        .success()
}

#[test]
fn the_images_command_and_health_check_work_against_a_real_postgres() {
    let cluster = Cluster::shared();
    let steps = instructions();
    let health = steps
        .iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .map(|(_, a)| a.clone())
        .unwrap();
    let probe = json_array(health.split_once("CMD").unwrap().1.trim());
    assert!(probe.iter().any(|a| a.contains("/9187")), "{probe:?}");

    // docker/proxy.toml with what compose provides swapped for this machine:
    // the cluster for the `postgres` service, free ports, a scratch volume.
    let work = scratch("docker-run");
    let (port, http) = (free_port(), free_port());
    let mut config = docker_config();
    config["server"]["listen"] = format!("127.0.0.1:{port}").into();
    config["admin"]["http_listen"] = format!("127.0.0.1:{http}").into();
    config["upstream"]["host"] = "127.0.0.1".into();
    config["upstream"]["port"] = i64::from(cluster.port).into();
    config["usage"]["store"] = format!("sqlite:{}", work.join("usage.db").display()).into();
    let file = work.join("proxy.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();

    assert!(
        !healthcheck(&probe, http),
        "nothing listens yet: the probe can fail"
    );
    let args = ["serve", "--config", &file.to_string_lossy()];
    let child = Command::new(BinProxy::exe())
        .args(args)
        .env("DDLGUARD_UPSTREAM_PASSWORD", "unused with trust")
        .env("DDLGUARD_ADMIN_PASSWORD", "admin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthcheck(&probe, http) {
        assert!(Instant::now() < deadline, "the health check never passed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = crate::support::cluster::run_psql(
        &cluster.tool("psql"),
        "127.0.0.1",
        port,
        "postgres",
        "postgres",
        "SELECT 'through ddlguard'",
    );
    assert_eq!(out, "through ddlguard");
}
