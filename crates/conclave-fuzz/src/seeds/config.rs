//! Seeds for the configuration loader: configurations serialized by the loader's own types.

use crate::runner::Seed;
use conclave_raft::RaftConfig;
use conclaved::config::{Config, Member, ProtocolName, ServerSettings};

fn member(id: u64) -> Member {
    Member {
        id,
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 2380 + id as u16 * 10)).into(),
        client: std::net::SocketAddr::from(([127, 0, 0, 1], 2379 + id as u16 * 10)).into(),
    }
}

fn toml_of(config: &Config) -> Vec<u8> {
    toml::to_string_pretty(config).expect("a config prints as TOML").into_bytes()
}

pub fn seeds() -> Vec<Seed> {
    let single = Config { members: vec![member(1)], ..Config::default() };
    let three = Config {
        node_id: 2,
        protocol: ProtocolName::Raft,
        members: vec![member(1), member(2), member(3)],
        cluster_id: 77,
        log_level: "conclave_raft=debug,info".into(),
        server: ServerSettings {
            max_request_bytes: 4096,
            request_timeout_ms: 100,
            ..ServerSettings::default()
        },
        raft: RaftConfig::default(),
        ..Config::default()
    };
    // The compact member form an operator writes by hand; the loader parses it itself.
    let mut compact = toml::Table::new();
    compact.insert("node_id".into(), toml::Value::Integer(1));
    compact.insert("protocol".into(), toml::Value::String("raft".into()));
    compact.insert(
        "members".into(),
        toml::Value::Array(vec![
            toml::Value::String("1=127.0.0.1:2380,127.0.0.1:2379".into()),
            toml::Value::String("2=[::1]:2390,[::1]:2389".into()),
        ]),
    );
    vec![
        Seed { name: "single.toml".into(), bytes: toml_of(&single) },
        Seed { name: "three-members.toml".into(), bytes: toml_of(&three) },
        Seed {
            name: "compact-members.toml".into(),
            bytes: toml::to_string(&compact).expect("a table prints").into_bytes(),
        },
    ]
}
