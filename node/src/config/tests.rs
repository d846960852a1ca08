use super::*;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(
        ConfigSource::File("conf/cluster.toml".into()),
        text,
        &ConfigArgs::default(),
    )
}

fn error(text: &str) -> String {
    parse(text).map(|_| ()).unwrap_err().to_string()
}

const TWO_NODES: &str = r#"
[cluster]
data_dir = "state"

[[node]]
id = "a"
cluster_addr = "127.0.0.1:7001"
http_addr = "127.0.0.1:8001"

[[node]]
id = "b"
cluster_addr = "127.0.0.1:7002"
http_addr = "127.0.0.1:8002"
data_dir = "/var/lib/b"
"#;

#[test]
fn the_embedded_default_is_three_local_nodes() {
    let c = NodeConfig::parse(
        ConfigSource::Embedded,
        EMBEDDED_DEFAULT,
        &ConfigArgs::default(),
    )
    .unwrap();
    let ids: Vec<_> = c.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2", "n3"]);
    assert!(c.nodes.iter().all(|n| n.cluster_addr.ip().is_loopback()));
    assert_eq!(c.nodes[0].data_dir, PathBuf::from("data/n1"));
    assert_eq!(c.http, HttpSettings::default());
    assert_eq!(c.detector, DetectorSettings::default());
    assert!(c.cookie.is_none(), "no secret in the shipped file");
}

#[test]
fn relative_paths_are_taken_from_the_file_directory() {
    let c = parse(TWO_NODES).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("conf/state"));
    assert_eq!(c.nodes[0].data_dir, PathBuf::from("conf/state/a"));
    assert_eq!(c.nodes[1].data_dir, PathBuf::from("/var/lib/b"));
    assert_eq!(c.node("b").unwrap().http_addr.port(), 8002);
    assert!(
        c.node("c")
            .unwrap_err()
            .to_string()
            .contains("configured: a, b")
    );
}

#[test]
fn an_unknown_key_names_the_file_line_and_key() {
    let e = error("[cluster]\ndata_dir = \"x\"\nheartbeat_ms = 5\n");
    assert!(e.starts_with("conf/cluster.toml: "), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("heartbeat_ms"), "{e}");
}

#[test]
fn a_wrong_type_and_bad_syntax_are_reported() {
    let e = error("[http]\nbody_limit_bytes = \"big\"\n");
    assert!(
        e.contains("line 2") && e.contains("body_limit_bytes"),
        "{e}"
    );
    let e = error("[http\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn semantic_errors_name_the_line() {
    let dup = TWO_NODES.replace("id = \"b\"", "id = \"a\"");
    assert_eq!(
        error(&dup),
        "conf/cluster.toml:11: node.id: a is already used by another node"
    );
    let bad_addr = TWO_NODES.replace("127.0.0.1:8002", "localhost:8002");
    assert!(error(&bad_addr).starts_with("conf/cluster.toml:13: node.http_addr:"));
    let clash = TWO_NODES.replace("127.0.0.1:8002", "127.0.0.1:7001");
    assert!(error(&clash).contains("already used by node a"));
    let timing = TWO_NODES
        .to_string()
        .replace("[cluster]", "[cluster]\ndown_after_ms = 10");
    assert_eq!(
        error(&timing),
        "conf/cluster.toml:3: cluster.down_after_ms: must be greater than suspect_after_ms"
    );
    let weak = TWO_NODES.replace("[cluster]", "[cluster]\ncookie = \"abc\"");
    assert!(error(&weak).contains("cluster.cookie: must be at least 16"));
    assert!(error("").contains("no [[node]] entries"));
    let bad_id = TWO_NODES.replace("id = \"a\"", "id = \"A!\"");
    assert!(error(&bad_id).starts_with("conf/cluster.toml:6: node.id:"));
}

#[test]
fn the_event_bus_takes_its_dead_letter_threshold_within_bounds() {
    assert_eq!(
        parse(TWO_NODES).unwrap().event_max_attempts,
        5,
        "the default"
    );
    let with = |n: &str| format!("{TWO_NODES}\n[events]\nmax_attempts = {n}\n");
    assert_eq!(parse(&with("12")).unwrap().event_max_attempts, 12);
    assert!(error(&with("0")).contains("events.max_attempts: must be greater than 0"));
    assert!(error(&with("101")).contains("events.max_attempts: at most 100, got 101"));
    assert!(error(&format!("{TWO_NODES}\n[events]\nretries = 3\n")).contains("unknown field"));
}

#[test]
fn overrides_win_and_are_named_in_errors() {
    let mut args = ConfigArgs::default();
    args.tuning.down_after_ms = Some(5000);
    args.data_dir = Some("/tmp/elsewhere".into());
    let c = NodeConfig::parse(ConfigSource::File("c.toml".into()), TWO_NODES, &args).unwrap();
    assert_eq!(c.detector.down_after, ms(5000));
    assert_eq!(c.nodes[0].data_dir, PathBuf::from("/tmp/elsewhere/a"));
    args.tuning.suspect_after_ms = Some(9000);
    let e = NodeConfig::parse(ConfigSource::File("c.toml".into()), TWO_NODES, &args)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cluster.down_after_ms (from a command-line flag"),
        "{e}"
    );
    let env = args.to_env();
    assert!(env.contains(&("TROUPE_DOWN_AFTER_MS", "5000".to_string())));
    assert!(env.contains(&("TROUPE_DATA_DIR", "/tmp/elsewhere".to_string())));
}

#[test]
fn cluster_settings_carry_the_timings() {
    let c = parse(TWO_NODES).unwrap();
    let s = c.cluster_settings("b", "0123456789abcdef".into()).unwrap();
    assert_eq!(s.self_id().as_str(), "b");
    assert_eq!(s.detector(), c.detector);
    assert!(c.cluster_settings("z", "0123456789abcdef".into()).is_err());
}

#[test]
fn for_test_is_a_file_that_names_only_its_nodes() {
    let nodes = [("a", [7001, 8001, 7101]), ("b", [7002, 8002, 7102])];
    let built = NodeConfig::for_test(Path::new("/tmp/t"), &nodes);
    let mut text = "[cluster]\ndata_dir = \"/tmp/t\"\n".to_string();
    for (id, [c, h, l]) in nodes {
        text.push_str(&format!(
            "[[node]]\nid = \"{id}\"\ncluster_addr = \"127.0.0.1:{c}\"\nhttp_addr = \"127.0.0.1:{h}\"\nlink_addr = \"127.0.0.1:{l}\"\n"
        ));
    }
    let parsed = NodeConfig::parse(ConfigSource::Embedded, &text, &ConfigArgs::default()).unwrap();
    assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
}

#[test]
fn the_rate_limit_is_off_unless_set_and_bounded() {
    assert_eq!(
        parse(TWO_NODES).unwrap().http.rate_limit,
        None,
        "off by default"
    );
    let with = |extra: &str| format!("{TWO_NODES}\n[http]\n{extra}\n");
    let c = parse(&with("rate_limit_per_second = 5")).unwrap();
    assert_eq!(c.http.rate_limit, Some((5, 5)), "a second's worth of burst");
    let c = parse(&with("rate_limit_per_second = 5\nrate_limit_burst = 20")).unwrap();
    assert_eq!(c.http.rate_limit, Some((5, 20)));
    assert!(
        error(&with("rate_limit_per_second = 2000000"))
            .contains("http.rate_limit_per_second: at most")
    );
}

#[test]
fn a_new_wallets_balance_is_configured_within_bounds() {
    assert_eq!(
        parse(TWO_NODES).unwrap().opening_balance_cents,
        100_000,
        "the default"
    );
    let with = |n: &str| format!("{TWO_NODES}\n[payments]\nopening_balance_cents = {n}\n");
    assert_eq!(parse(&with("0")).unwrap().opening_balance_cents, 0);
    assert_eq!(parse(&with("2500")).unwrap().opening_balance_cents, 2500);
    assert!(error(&with("1000000000001")).contains("payments.opening_balance_cents: at most"));
    assert!(error(&with("-1")).contains("opening_balance_cents"));
}

#[test]
fn the_otlp_endpoint_comes_from_the_file_or_the_environment_which_wins() {
    assert_eq!(parse(TWO_NODES).unwrap().otlp_traces_url, None);
    let file = format!("{TWO_NODES}\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n");
    assert_eq!(
        parse(&file).unwrap().otlp_traces_url.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    let args = |endpoint: &str| ConfigArgs {
        otlp_endpoint: Some(endpoint.to_string()),
        ..ConfigArgs::default()
    };
    let source = || ConfigSource::File("conf/cluster.toml".into());
    let overridden = NodeConfig::parse(source(), &file, &args("http://collector:4318/")).unwrap();
    assert_eq!(
        overridden.otlp_traces_url.as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    // An empty override turns export off.
    let off = NodeConfig::parse(source(), &file, &args("")).unwrap();
    assert_eq!(off.otlp_traces_url, None);
    let bad = format!("{TWO_NODES}\n[telemetry]\notlp_endpoint = \"collector:4318\"\n");
    let e = error(&bad);
    assert!(
        e.contains("telemetry.otlp_endpoint") && e.contains("http://"),
        "{e}"
    );
    let e = NodeConfig::parse(source(), TWO_NODES, &args("grpc://c:4317"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("TROUPE_OTLP_ENDPOINT"), "{e}");
    let e = error(&format!("{TWO_NODES}\n[telemetry]\nendpoint = \"x\"\n"));
    assert!(e.contains("endpoint"), "{e}");
}
