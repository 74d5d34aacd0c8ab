//! The docs that describe the code stay true: the map of the workspace (`docs/README.md`) lists
//! exactly the crates `cargo metadata` finds, at their paths, with their einfo dependencies, and
//! the dependency rules it states hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, (String, BTreeSet<String>)>;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is inside the workspace")
}

/// crate → (path, einfo crates it depends on, of any kind), from `cargo metadata`.
fn from_cargo() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let root = workspace_root().canonicalize().expect("the workspace root");
    let mut graph = Graph::new();
    for p in m["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("a name").to_owned();
        let manifest = Path::new(p["manifest_path"].as_str().expect("a manifest path"));
        let dir = manifest.parent().expect("a directory").strip_prefix(&root).expect("inside the workspace");
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("einfo-"))
            .map(str::to_owned)
            .collect();
        graph.insert(name, (format!("{}/", dir.display()), deps));
    }
    graph
}

/// The same, from the table of `docs/README.md`.
fn from_map() -> Graph {
    let text = std::fs::read_to_string(workspace_root().join("docs/README.md")).expect("docs/README.md");
    let mut graph = Graph::new();
    for line in text.lines().filter(|l| l.starts_with("| `einfo-")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row of four cells: {line}");
        let unquote = |s: &str| s.trim_matches('`').to_owned();
        let deps = if cells[3] == "—" { BTreeSet::new() } else { cells[3].split(", ").map(unquote).collect() };
        graph.insert(unquote(cells[0]), (unquote(cells[1]), deps));
    }
    graph
}

async fn the_workspace_map_matches_cargo_metadata() {
    let (cargo, map) = (from_cargo(), from_map());
    assert_eq!(
        cargo.keys().collect::<Vec<_>>(),
        map.keys().collect::<Vec<_>>(),
        "docs/README.md lists every crate of the workspace, and only those"
    );
    for (name, (path, deps)) in &cargo {
        let (map_path, map_deps) = &map[name];
        assert_eq!(path, map_path, "{name}'s path in docs/README.md");
        assert_eq!(deps, map_deps, "{name}'s einfo dependencies in docs/README.md");
    }
}

async fn the_dependency_rules_of_the_map_hold() {
    let cargo = from_cargo();
    let deps = |c: &str| cargo[c].1.clone();
    assert!(!deps("einfo-testkit").contains("einfo-cli"), "the test kit does not depend on the binary's crate");
    for service in ["einfo-registry", "einfo-inspection", "einfo-reporting"] {
        assert!(!deps("einfo-central").contains(service), "the centre does not depend on {service}");
        assert!(!deps("einfo-gateway").contains(service), "the gateway does not depend on {service}");
        for other in ["einfo-registry", "einfo-inspection", "einfo-reporting"] {
            assert!(!deps(service).contains(other), "{service} talks to {other} over protobuf only");
        }
    }
    let on_bench: Vec<&String> = cargo.iter().filter(|(_, (_, d))| d.contains("einfo-bench")).map(|(n, _)| n).collect();
    assert_eq!(on_bench, vec!["einfo-cli"], "only the binary depends on the benchmarks");
}

/// The configuration the Kubernetes manifests ship loads as the binary loads it (unknown keys are
/// refused), and no pod gets the service-link variables the strict `EINFO_` loader would refuse.
async fn the_shipped_kubernetes_configuration_loads() {
    let root = workspace_root();
    let configmap = std::fs::read_to_string(root.join("deploy/k8s/configmap.yaml")).expect("the ConfigMap");
    // The block scalar under `einfo.toml: |`, its four-space indent taken off.
    let toml: String = configmap
        .lines()
        .skip_while(|l| l.trim() != "einfo.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(toml.contains("provinces"), "the einfo.toml of the ConfigMap: {toml}");
    let dir = std::env::temp_dir().join(format!("einfo-configmap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let file = dir.join("einfo.toml");
    std::fs::write(&file, &toml).expect("write it");
    let s = einfo_common::config::Settings::load(Some(&file))
        .unwrap_or_else(|e| panic!("the shipped einfo.toml: {e:#}\n{toml}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(s.provinces, vec!["01".to_string(), "79".to_string()]);
    assert_eq!(s.health_listen.map(|a| a.port()), Some(8081));
    assert!(s.reporting.centre_endpoint.as_deref().is_some_and(|e| e.starts_with("https://")), "{s:?}");
    for manifest in ["deploy/k8s/statefulset.yaml", "deploy/k8s/gateway.yaml"] {
        let text = std::fs::read_to_string(root.join(manifest)).expect("a manifest");
        assert!(text.contains("enableServiceLinks: false"), "{manifest} lets Kubernetes inject EINFO_… variables");
        assert!(
            text.contains("port: 8081") && !text.contains("grpc:\n              port: 50051"),
            "{manifest}: probes on the health address"
        );
    }
}

einfo_testkit::plain_tests!(
    the_workspace_map_matches_cargo_metadata,
    the_dependency_rules_of_the_map_hold,
    the_shipped_kubernetes_configuration_loads,
);
