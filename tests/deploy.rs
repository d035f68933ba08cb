//! The deployment files under deploy/ stay true to the binary. No Docker engine,
//! Kubernetes or systemd runs here, so they are parsed and cross-checked:
//!
//! * deploy/keyframe.toml parses as TOML once uncommented, and documents exactly the
//!   fields of the config structs (read from their source files);
//! * every YAML file parses; every `keyframe` command line in the Dockerfile,
//!   docker-compose.yml, the Kubernetes manifests and the systemd units names a real
//!   command and only flags that `keyframe COMMAND --help` lists; every
//!   `KEYFRAME_*` variable is a real option; config files embedded in them parse and
//!   name real options;
//! * ports agree: listen addresses, container ports, probes, Services and the URLs
//!   servers use to reach each other;
//! * the Dockerfile is multi-stage and runs as a non-root user; the Kubernetes
//!   manifests have an HPA for edges and probes on /_keyframe/healthz.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `pub NAME:` fields of `struct NAME {` in a source file.
fn struct_fields(rel: &str, name: &str) -> BTreeSet<String> {
    let src = read(rel);
    let start = src
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("{rel} has no struct {name}"));
    let body = &src[start..];
    let end = body.find("\n}").expect("end of struct");
    let fields: BTreeSet<String> = body[..end]
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.trim().to_string())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        })
        .collect();
    assert!(!fields.is_empty(), "no fields found in {rel} {name}");
    fields
}

/// Every option name: the fields of the config structs of origin, edge, catalog and
/// of the binary's shared options and `serve` addresses.
fn options() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    all.extend(struct_fields("origin/src/config.rs", "Config"));
    all.extend(struct_fields("edge/src/config.rs", "Config"));
    all.extend(struct_fields("catalog/src/config.rs", "Config"));
    all.extend(struct_fields("src/cli.rs", "Shared"));
    all.extend(struct_fields("src/cli.rs", "ServeAddrs"));
    all
}

const COMMANDS: &[&str] = &[
    "serve",
    "origin",
    "edge",
    "catalog",
    "ingest",
    "gc",
    "migrate",
    "recommend",
    "bench",
    "ballista",
];

/// The long flags `keyframe COMMAND --help` lists (global ones included).
fn flags_of(command: &str, cache: &mut BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    if let Some(f) = cache.get(command) {
        return f.clone();
    }
    let out = common::keyframe()
        .args(command.split(' '))
        .arg("--help")
        .output()
        .expect("keyframe --help");
    assert!(out.status.success(), "keyframe {command} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let flags: BTreeSet<String> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap_or("")
                .to_string()
        })
        .filter(|w| !w.is_empty())
        .collect();
    assert!(flags.contains("help"), "{text}");
    cache.insert(command.to_string(), flags.clone());
    flags
}

/// One `keyframe` invocation found in a deployment file.
#[derive(Debug)]
struct Invocation {
    file: String,
    args: Vec<String>,
}

impl Invocation {
    fn command(&self) -> &str {
        self.args
            .iter()
            .find(|a| COMMANDS.contains(&a.as_str()))
            .unwrap_or_else(|| panic!("{}: no keyframe command in {:?}", self.file, self.args))
    }

    /// The value of `--flag VALUE` or `--flag=VALUE`.
    fn flag(&self, name: &str) -> Option<&str> {
        let long = format!("--{name}");
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if *a == long {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(&format!("{long}=")) {
                return Some(v);
            }
        }
        None
    }

    fn listen_port(&self) -> Option<u16> {
        self.flag("listen")
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
    }
}

/// `KEYFRAME_*` names in a text.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("KEYFRAME_") {
        let tail = &rest[i + "KEYFRAME_".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name.to_ascii_lowercase());
        }
        rest = tail;
    }
    out
}

fn check_env_names(file: &str, text: &str, options: &BTreeSet<String>) {
    for name in env_names(text) {
        assert!(
            name == "config" || options.contains(&name),
            "{file}: KEYFRAME_{} is not an option of keyframe",
            name.to_ascii_uppercase()
        );
    }
}

fn check_invocation(inv: &Invocation, cache: &mut BTreeMap<String, BTreeSet<String>>) {
    let mut command = inv.command().to_string();
    if command == "ballista" {
        // `keyframe ballista scheduler|executor`: checked once the build has it
        // (it comes with the DataFusion/Ballista batch).
        let sub = inv
            .args
            .iter()
            .skip_while(|a| *a != "ballista")
            .nth(1)
            .unwrap_or_else(|| panic!("{}: `ballista` without a subcommand", inv.file));
        assert!(
            ["scheduler", "executor"].contains(&sub.as_str()),
            "{}: ballista {sub}",
            inv.file
        );
        let has = common::keyframe()
            .args(["ballista", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            eprintln!(
                "{}: this build has no `keyframe ballista`; flags not checked",
                inv.file
            );
            return;
        }
        command = format!("ballista {sub}");
    }
    let known = flags_of(&command, cache);
    for a in &inv.args {
        if let Some(f) = a.strip_prefix("--") {
            let f = f.split('=').next().unwrap_or(f);
            assert!(
                known.contains(f),
                "{}: `keyframe {command}` has no flag --{f} (args {:?})",
                inv.file,
                inv.args
            );
        }
    }
}

/// Keys of a TOML document (tables: their own names, except `region_edges`, a map).
fn check_toml_keys(file: &str, text: &str, options: &BTreeSet<String>) {
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{file}: not TOML: {e}"));
    assert!(!t.is_empty(), "{file}: empty");
    for k in t.keys() {
        assert!(options.contains(k), "{file}: `{k}` is not an option");
    }
}

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(&text) {
        let mut v: Yaml =
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"));
        v.apply_merge()
            .unwrap_or_else(|e| panic!("{rel}: bad merge keys: {e}"));
        if !v.is_null() {
            docs.push(v);
        }
    }
    assert!(!docs.is_empty(), "{rel}: no documents");
    docs
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| match x {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    other => panic!("not a string: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn s<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

/// `http://HOST:PORT` URLs in a text.
fn urls(text: &str) -> Vec<(String, u16)> {
    text.split("http://")
        .skip(1)
        .filter_map(|rest| {
            let hostport: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-' || *c == ':')
                .collect();
            let (h, p) = hostport.split_once(':')?;
            Some((h.to_string(), p.parse().ok()?))
        })
        .collect()
}

fn is_dependency_yaml(file: &str) -> bool {
    file.ends_with(".yaml") || file.ends_with(".yml")
}

/// Files under deploy/ with one of the extensions.
fn deploy_files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("deploy").join(sub))
        .unwrap_or_else(|e| panic!("deploy/{sub}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn the_example_config_documents_exactly_the_config_structs() {
    let options = options();
    let text = read("deploy/keyframe.toml");
    // Uncommented, the example must be valid TOML with the documented values.
    let mut uncommented = String::new();
    let mut documented = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim_start();
        let Some(body) = l.strip_prefix("# ") else {
            continue;
        };
        let Some((k, _)) = body.split_once(" = ") else {
            continue;
        };
        let k = k.trim();
        if !k
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        assert!(
            documented.insert(k.to_string()),
            "deploy/keyframe.toml documents `{k}` twice"
        );
        // Each option's line says why, after the value.
        let why = body.split_once(" # ").map(|(_, w)| w.trim()).unwrap_or("");
        assert!(
            !why.is_empty(),
            "deploy/keyframe.toml: `{k}` has no one-line why"
        );
        let value_and_comment = &body[k.len()..];
        let value = value_and_comment
            .split_once(" # ")
            .map(|(v, _)| v)
            .unwrap_or(value_and_comment);
        uncommented.push_str(&format!("{k}{value}\n"));
    }
    let parsed: toml::Table = uncommented
        .parse()
        .unwrap_or_else(|e| panic!("deploy/keyframe.toml, uncommented, is not TOML: {e}"));
    assert_eq!(parsed.len(), documented.len());
    let missing: Vec<_> = options.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&options).collect();
    assert!(
        missing.is_empty(),
        "options missing from deploy/keyframe.toml: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "deploy/keyframe.toml documents unknown options: {unknown:?}"
    );
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_runs_real_commands() {
    let text = read("deploy/docker/Dockerfile");
    let options = options();
    check_env_names("deploy/docker/Dockerfile", &text, &options);
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = text.rfind("\nFROM ").expect("final stage");
    let final_stage = &text[last..];
    let user = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as {user}"
    );
    assert!(
        final_stage.contains("ENTRYPOINT [\"/usr/local/bin/keyframe\"]"),
        "the entrypoint is the binary"
    );
    let mut cache = BTreeMap::new();
    for line in final_stage.lines().filter(|l| l.starts_with("CMD ")) {
        let args: Vec<String> =
            serde_json::from_str(&line["CMD ".len()..]).expect("CMD in exec form");
        check_invocation(
            &Invocation {
                file: "Dockerfile".into(),
                args,
            },
            &mut cache,
        );
    }
    let exposed: BTreeSet<u16> = final_stage
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse().expect("port")))
        .collect();
    assert_eq!(exposed, BTreeSet::from([8080, 8081, 8082]));
    assert!(
        root()
            .join("deploy/docker/Dockerfile.dockerignore")
            .is_file(),
        "the build context ignores target/"
    );
}

#[test]
fn docker_compose_is_consistent() {
    let file = "deploy/docker-compose.yml";
    let options = options();
    let text = read(file);
    check_env_names(file, &text, &options);
    let docs = yaml_docs(file);
    let services = s(&docs[0], &["services"])
        .and_then(Yaml::as_mapping)
        .expect("services");
    let mut cache = BTreeMap::new();
    let mut listen: BTreeMap<String, u16> = BTreeMap::new();
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    for (name, svc) in services {
        let name = name.as_str().expect("name").to_string();
        let image = svc.get("image").and_then(Yaml::as_str).unwrap_or("");
        if !image.starts_with("keyframe") {
            continue;
        }
        let mut args: Vec<String> = svc.get("entrypoint").map(strings).unwrap_or_default();
        if args.first().is_some_and(|a| a.ends_with("/keyframe")) {
            args.remove(0);
        }
        args.extend(svc.get("command").map(strings).unwrap_or_default());
        let inv = Invocation {
            file: format!("{file} ({name})"),
            args,
        };
        check_invocation(&inv, &mut cache);
        kinds.insert(name.clone(), inv.command().to_string());
        if let Some(p) = inv.listen_port() {
            listen.insert(name.clone(), p);
            if let Some(ports) = svc.get("ports") {
                for m in strings(ports) {
                    let inner: u16 = m
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .expect("port mapping");
                    assert_eq!(inner, p, "{name}: publishes {m} but listens on {p}");
                }
            }
        }
        assert_eq!(
            svc.get("user").and_then(Yaml::as_str),
            Some("65532:65532"),
            "{name} runs as the unprivileged user"
        );
    }
    for want in ["postgres", "minio", "migrate", "catalog", "shield"] {
        assert!(services.contains_key(want), "compose has {want}");
    }
    check_compose_events_and_batch(services);
    let count = |k: &str| kinds.values().filter(|v| *v == k).count();
    assert!(count("origin") >= 2, "two origins: {kinds:?}");
    assert!(count("edge") >= 3, "a shield and regional edges: {kinds:?}");
    // Every URL between services names a service and the port it listens on.
    for (host, port) in urls(&text) {
        if host == "localhost" || host == "minio" {
            continue;
        }
        let p = listen
            .get(&host)
            .unwrap_or_else(|| panic!("{file}: http://{host}:{port} names no keyframe service"));
        assert_eq!(
            *p, port,
            "{file}: http://{host}:{port}, but {host} listens on {p}"
        );
    }
    // Published edge ports are what the catalog sends players to.
    let catalog = &services["catalog"];
    let edges = s(catalog, &["environment", "KEYFRAME_REGION_EDGES"])
        .and_then(Yaml::as_str)
        .expect("catalog region_edges");
    for (region, url) in edges.split(',').filter_map(|e| e.split_once('=')) {
        let svc = &services[format!("edge-{region}").as_str()];
        let published = strings(svc.get("ports").expect("ports"));
        let port = url.rsplit(':').next().expect("port");
        assert!(
            published.iter().any(|m| m.starts_with(&format!("{port}:"))),
            "{region} players go to {url}, which edge-{region} does not publish"
        );
        let args = strings(svc.get("command").expect("command"));
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--region" && w[1] == region),
            "edge-{region} has --region {region}"
        );
    }
}

/// The 3-node JetStream cluster the catalog appends to, and the Ballista
/// scheduler with two executors the batch runs on.
fn check_compose_events_and_batch(services: &serde_norway::Mapping) {
    let nodes = ["nats-1", "nats-2", "nats-3"];
    for n in nodes {
        let svc = services.get(n).unwrap_or_else(|| panic!("compose has {n}"));
        let args = strings(svc.get("command").expect("nats command"));
        assert!(
            args.iter().any(|a| a == "--jetstream"),
            "{n} runs JetStream"
        );
        assert!(
            args.iter().any(|a| a == &format!("--server_name={n}")),
            "{n} names itself"
        );
        let routes = args
            .iter()
            .find_map(|a| a.strip_prefix("--routes="))
            .unwrap_or_else(|| panic!("{n} has routes"));
        for other in nodes {
            assert!(
                routes.contains(&format!("nats://{other}:6222")),
                "{n} routes to {other}"
            );
        }
    }
    let events = s(&services["catalog"], &["environment", "KEYFRAME_EVENTS"])
        .and_then(Yaml::as_str)
        .expect("the catalog's KEYFRAME_EVENTS");
    for n in nodes {
        assert!(
            events.contains(&format!("nats://{n}:4222")),
            "the catalog reaches {n}: {events}"
        );
    }
    let command = |name: &str| {
        strings(
            services
                .get(name)
                .unwrap_or_else(|| panic!("compose has {name}"))
                .get("command")
                .expect("command"),
        )
    };
    let scheduler = command("ballista-scheduler");
    assert_eq!(&scheduler[..2], ["ballista", "scheduler"]);
    let port = scheduler
        .iter()
        .skip_while(|a| *a != "--listen")
        .nth(1)
        .and_then(|l| l.rsplit(':').next())
        .expect("scheduler --listen")
        .to_string();
    for e in ["ballista-executor-1", "ballista-executor-2"] {
        let args = command(e);
        assert_eq!(&args[..2], ["ballista", "executor"], "{e}");
        let at = args
            .iter()
            .skip_while(|a| *a != "--scheduler")
            .nth(1)
            .expect("--scheduler");
        assert_eq!(*at, format!("ballista-scheduler:{port}"), "{e}");
    }
    let recommend = command("recommend");
    assert!(
        recommend
            .windows(2)
            .any(|w| w[0] == "--engine" && w[1] == format!("ballista://ballista-scheduler:{port}")),
        "the batch runs on the scheduler: {recommend:?}"
    );
}

/// The containers of a workload (Deployment, StatefulSet, CronJob), init ones too.
fn containers(doc: &Yaml) -> Vec<&Yaml> {
    let spec = match doc.get("kind").and_then(Yaml::as_str) {
        Some("CronJob") => s(doc, &["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => s(doc, &["spec", "template", "spec"]),
    };
    let Some(spec) = spec else { return Vec::new() };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Yaml::as_sequence))
        .flatten()
        .collect()
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let options = options();
    let mut cache = BTreeMap::new();
    let mut docs: Vec<(String, Yaml)> = Vec::new();
    for p in deploy_files("k8s") {
        let file = rel(&p);
        assert!(is_dependency_yaml(&file), "{file}: only YAML in deploy/k8s");
        check_env_names(&file, &read(&file), &options);
        docs.extend(yaml_docs(&file).into_iter().map(|d| (file.clone(), d)));
    }
    let kind = |d: &Yaml| {
        d.get("kind")
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = |d: &Yaml| {
        s(d, &["metadata", "name"])
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string()
    };
    let kustomization = docs
        .iter()
        .find(|(_, d)| kind(d) == "Kustomization")
        .map(|(_, d)| strings(d.get("resources").expect("resources")))
        .expect("a kustomization.yaml");
    for r in &kustomization {
        assert!(
            root().join("deploy/k8s").join(r).is_file(),
            "kustomization lists {r}"
        );
    }
    // Config files in ConfigMaps parse and name real options.
    for (file, d) in docs.iter().filter(|(_, d)| kind(d) == "ConfigMap") {
        for (k, v) in d.get("data").and_then(Yaml::as_mapping).expect("data") {
            let k = k.as_str().expect("key");
            if k.ends_with(".toml") {
                check_toml_keys(&format!("{file} {k}"), v.as_str().expect("text"), &options);
            } else if let Some(opt) = k.strip_prefix("KEYFRAME_") {
                assert!(options.contains(&opt.to_ascii_lowercase()), "{file}: {k}");
            }
        }
    }
    // Workloads: real commands and flags; ports, probes and Services agree.
    let mut service_ports: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for (_, d) in docs.iter().filter(|(_, d)| kind(d) == "Service") {
        let ports = s(d, &["spec", "ports"])
            .and_then(Yaml::as_sequence)
            .expect("ports");
        service_ports.insert(
            name(d),
            ports
                .iter()
                .filter_map(|p| p.get("port").and_then(Yaml::as_u64))
                .map(|p| u16::try_from(p).expect("port"))
                .collect(),
        );
    }
    let mut roles = BTreeSet::new();
    for (file, d) in &docs {
        let k = kind(d);
        if !["Deployment", "StatefulSet", "CronJob", "Job"].contains(&k.as_str()) {
            continue;
        }
        let labels = s(d, &["spec", "template", "metadata", "labels"]).cloned();
        for c in containers(d) {
            // Other images (NATS) are checked below.
            if c.get("image").and_then(Yaml::as_str) != Some("keyframe") {
                continue;
            }
            let args: Vec<String> = c.get("command").map(strings).unwrap_or_default();
            let mut args: Vec<String> = args.into_iter().skip(1).collect();
            args.extend(c.get("args").map(strings).unwrap_or_default());
            let inv = Invocation {
                file: format!("{file} {}", name(d)),
                args,
            };
            check_invocation(&inv, &mut cache);
            let command = inv.command().to_string();
            let mut named: BTreeMap<String, u16> = BTreeMap::new();
            for p in c
                .get("ports")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                let port =
                    u16::try_from(p.get("containerPort").and_then(Yaml::as_u64).expect("port"))
                        .expect("port");
                let pname = p
                    .get("name")
                    .and_then(Yaml::as_str)
                    .unwrap_or("")
                    .to_string();
                named.insert(pname, port);
            }
            if let Some(listen) = inv.listen_port().filter(|_| command == "ballista") {
                roles.insert(format!("ballista {}", inv.args[1]));
                for probe in ["readinessProbe", "livenessProbe"] {
                    let port = s(c, &[probe, "tcpSocket", "port"])
                        .and_then(Yaml::as_str)
                        .unwrap_or_else(|| panic!("{}: no tcpSocket {probe}", inv.file));
                    assert_eq!(named.get(port), Some(&listen), "{}: {probe}", inv.file);
                }
            } else if let Some(listen) = inv.listen_port() {
                roles.insert(command.clone());
                assert!(
                    named.values().any(|p| *p == listen),
                    "{}: listens on {listen} but exposes {named:?}",
                    inv.file
                );
                for probe in ["readinessProbe", "livenessProbe"] {
                    let get = s(c, &[probe, "httpGet"])
                        .unwrap_or_else(|| panic!("{}: no {probe}", inv.file));
                    assert_eq!(
                        get.get("path").and_then(Yaml::as_str),
                        Some("/_keyframe/healthz"),
                        "{}: {probe}",
                        inv.file
                    );
                    let port = match get.get("port").expect("probe port") {
                        Yaml::String(n) => *named.get(n).expect("a named port"),
                        Yaml::Number(n) => u16::try_from(n.as_u64().expect("port")).expect("port"),
                        other => panic!("probe port {other:?}"),
                    };
                    assert_eq!(port, listen, "{}: {probe} port", inv.file);
                }
                // The Services that select this workload target a port it has.
                for (_, svc) in docs.iter().filter(|(_, x)| kind(x) == "Service") {
                    let Some(sel) = s(svc, &["spec", "selector"]).and_then(Yaml::as_mapping) else {
                        continue;
                    };
                    let matches = sel.iter().all(|(k, v)| {
                        labels
                            .as_ref()
                            .and_then(|l| l.get(k.as_str().unwrap_or("")))
                            == Some(v)
                    });
                    if !matches {
                        continue;
                    }
                    for p in s(svc, &["spec", "ports"])
                        .and_then(Yaml::as_sequence)
                        .into_iter()
                        .flatten()
                    {
                        let ok = match p.get("targetPort") {
                            Some(Yaml::String(n)) => named.contains_key(n),
                            Some(Yaml::Number(n)) => n.as_u64() == Some(u64::from(listen)),
                            _ => p.get("port").and_then(Yaml::as_u64) == Some(u64::from(listen)),
                        };
                        assert!(
                            ok,
                            "Service {} targets a port {} lacks",
                            name(svc),
                            inv.file
                        );
                    }
                }
            }
            // URLs to other servers name a Service and one of its ports.
            for (host, port) in urls(&inv.args.join(" ")) {
                let ports = service_ports.get(&host).unwrap_or_else(|| {
                    panic!("{}: http://{host}:{port}: no such Service", inv.file)
                });
                assert!(
                    ports.contains(&port),
                    "{}: Service {host} has no port {port}",
                    inv.file
                );
            }
        }
    }
    for role in [
        "origin",
        "edge",
        "catalog",
        "ballista scheduler",
        "ballista executor",
    ] {
        assert!(roles.contains(role), "a {role} workload");
    }
    // Watch events: a 3-node JetStream StatefulSet, routes to every node, and the
    // catalogs pointed at its Service.
    let nats = docs
        .iter()
        .find(|(_, d)| kind(d) == "StatefulSet" && name(d) == "keyframe-nats")
        .map(|(_, d)| d)
        .expect("a keyframe-nats StatefulSet");
    assert_eq!(
        s(nats, &["spec", "replicas"]).and_then(Yaml::as_u64),
        Some(3),
        "three JetStream nodes"
    );
    let conf = docs
        .iter()
        .find(|(_, d)| kind(d) == "ConfigMap" && name(d) == "keyframe-nats")
        .and_then(|(_, d)| s(d, &["data", "nats.conf"]))
        .and_then(Yaml::as_str)
        .expect("nats.conf");
    assert!(conf.contains("jetstream"), "{conf}");
    for i in 0..3 {
        assert!(
            conf.contains(&format!("keyframe-nats-{i}.keyframe-nats-cluster")),
            "routes to node {i}"
        );
    }
    let env = docs
        .iter()
        .find(|(_, d)| kind(d) == "ConfigMap" && name(d) == "keyframe-env")
        .and_then(|(_, d)| s(d, &["data", "KEYFRAME_EVENTS"]))
        .and_then(Yaml::as_str)
        .expect("KEYFRAME_EVENTS in keyframe-env");
    let host = env
        .trim_start_matches("nats://")
        .split(':')
        .next()
        .expect("host");
    assert!(
        service_ports.get(host).is_some_and(|p| p.contains(&4222)),
        "KEYFRAME_EVENTS names the Service {host}:4222"
    );
    let executors = docs
        .iter()
        .find(|(_, d)| kind(d) == "Deployment" && name(d) == "keyframe-ballista-executor")
        .map(|(_, d)| d)
        .expect("the Ballista executors");
    assert_eq!(
        s(executors, &["spec", "replicas"]).and_then(Yaml::as_u64),
        Some(2)
    );
    let args = strings(containers(executors)[0].get("args").expect("args"));
    let at = args
        .iter()
        .skip_while(|a| *a != "--scheduler")
        .nth(1)
        .expect("--scheduler");
    let (host, port) = at.split_once(':').expect("HOST:PORT");
    assert!(
        service_ports
            .get(host)
            .is_some_and(|p| p.contains(&port.parse().expect("port"))),
        "executors reach the scheduler's Service: {at}"
    );
    let hpa = docs
        .iter()
        .find(|(_, d)| kind(d) == "HorizontalPodAutoscaler")
        .map(|(_, d)| d)
        .expect("an HPA");
    let target = s(hpa, &["spec", "scaleTargetRef", "name"])
        .and_then(Yaml::as_str)
        .expect("target");
    let edge = docs
        .iter()
        .find(|(_, d)| name(d) == target && kind(d) == "Deployment")
        .map(|(_, d)| d)
        .expect("the HPA scales a Deployment");
    assert!(
        containers(edge)
            .iter()
            .any(|c| strings(c.get("args").expect("args"))
                .first()
                .is_some_and(|a| a == "edge")),
        "the HPA scales the edges"
    );
}

/// `key=value` lines of a systemd unit.
fn unit_entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_units_are_consistent() {
    let options = options();
    let mut cache = BTreeMap::new();
    let mut listen: BTreeMap<u16, String> = BTreeMap::new();
    let mut reached: Vec<(String, u16)> = Vec::new();
    let mut commands = BTreeSet::new();
    for p in deploy_files("systemd") {
        let file = rel(&p);
        let text = read(&file);
        check_env_names(&file, &text, &options);
        if !(file.ends_with(".service") || file.ends_with(".timer") || file.ends_with(".target")) {
            continue;
        }
        let mut sections = 0;
        for l in text.lines() {
            let l = l.trim();
            if l.starts_with('[') {
                assert!(
                    ["[Unit]", "[Service]", "[Install]", "[Timer]"].contains(&l),
                    "{file}: section {l}"
                );
                sections += 1;
            } else if !l.is_empty() && !l.starts_with('#') {
                assert!(l.contains('='), "{file}: `{l}` is not key=value");
            }
        }
        assert!(sections >= 2, "{file}: sections");
        for (k, v) in unit_entries(&text) {
            if k == "User" {
                assert_ne!(v, "root", "{file}: runs as root");
            }
            if !(k == "ExecStart" || k == "ExecStartPre") {
                continue;
            }
            let mut words = v.split_whitespace().map(String::from);
            let bin = words.next().expect("binary");
            assert!(bin.ends_with("/keyframe"), "{file}: {bin}");
            let inv = Invocation {
                file: file.clone(),
                args: words.collect(),
            };
            check_invocation(&inv, &mut cache);
            commands.insert(inv.command().to_string());
            if let Some(port) = inv.listen_port() {
                if let Some(other) = listen.insert(port, file.clone()) {
                    panic!("{file} and {other} both listen on {port}");
                }
            }
            for u in urls(&inv.args.join(" ")) {
                reached.push((file.clone(), u.1));
            }
        }
        if file.ends_with(".service") && text.contains("Type=simple") {
            assert!(text.contains("KillSignal=SIGTERM"), "{file}: graceful stop");
        }
    }
    for (file, port) in reached {
        assert!(
            listen.contains_key(&port),
            "{file}: nothing listens on {port}"
        );
    }
    for c in ["origin", "edge", "catalog", "migrate", "recommend"] {
        assert!(commands.contains(c), "a unit runs `keyframe {c}`");
    }
}

#[test]
fn the_cluster_script_is_valid_bash_and_documented() {
    let script = root().join("deploy/cluster/cluster.sh");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash -n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("deploy/cluster/cluster.sh");
    for c in ["up", "status", "down", "ingest", "purge"] {
        assert!(text.contains(&format!("  {c})")), "cluster.sh has `{c}`");
    }
    // Beside the rest: a JetStream server the catalog appends to, and a Ballista
    // scheduler with two executors (skipped, in one line, by a build without them).
    for piece in [
        "-js -a 127.0.0.1",
        "events_line=",
        "ballista scheduler --listen",
        "ballista executor --scheduler",
        "ballista-executor-$e",
        "no Ballista scheduler or executors started",
        "in-process history writer",
    ] {
        assert!(text.contains(piece), "cluster.sh: {piece}");
    }
    let guide = read("deploy/README.md");
    for topic in [
        "chunk",
        "memory",
        "disk",
        "PostgreSQL",
        "S3",
        "upgrade",
        "backup",
        "token",
        "admin",
        "TLS",
        "cluster.sh",
        "JetStream",
        "KEYFRAME_EVENTS",
        "Ballista",
        "events/s",
    ] {
        assert!(
            guide.to_lowercase().contains(&topic.to_lowercase()),
            "deploy/README.md covers {topic}"
        );
    }
}
