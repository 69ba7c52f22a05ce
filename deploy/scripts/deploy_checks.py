#!/usr/bin/env python3
"""Offline checks of deploy/ that the off-the-shelf validators do not make.

scripts/validate-deploy.sh runs this inside its virtualenv, which brings PyYAML and jsonschema
(kubernetes-validate and check-jsonschema depend on them). Each subcommand prints what it
checked and exits non-zero on the first kind of problem it finds, naming the file and the value.

  rules                the alert rules: the alerts issue 8 asks for, their annotations, and a
                       unit test that makes each fire and one that keeps it quiet
  metrics              every metric the dashboard and the rules name is one conclaved exports
  grafana              the dashboard's structure: protocol selector, datasource, the A/B panels
  compose FILE         the compose file, interpolated with its defaults, against the compose
                       spec; and its wiring (members, addresses, volumes, scrape targets)
  k8s OVERLAY FILE     a rendered overlay: custom resources against deploy/k8s/schemas, their
                       rules through promtool, and the wiring between the objects
  dockerfile FILE      a multi-stage build, a non-root user, a healthcheck, a data volume
"""

import ipaddress
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ["raft", "paxos", "totem", "gossip"]
RULES = ROOT / "deploy/prometheus/rules/conclave.rules.yml"
RULE_TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))

# The alerts issue 8 names, by the situation each one covers.
REQUIRED_ALERTS = {
    "ConclaveNoLeader": "no leader",
    "ConclaveHighNumberOfLeaderChanges": "leader changes > 3 in 15 min",
    "ConclaveHighProposalFailures": "proposal failures",
    "ConclaveSlowWALFsync": "slow WAL fsync (p99 > 0.5 s)",
    "ConclaveSlowPeerRoundTrip": "slow peer round trip",
    "ConclaveGossipVersionLagGrowing": "gossip version lag growing",
    "ConclaveTotemRingChanges": "totem ring changes",
    "ConclaveNodeDown": "node down",
}

# Metrics the dashboard must chart for its A/B panels.
REQUIRED_DASHBOARD_METRICS = [
    "conclave_proposals_total",
    "conclave_proposal_duration_seconds_bucket",
    "conclave_leader_changes_total",
    "conclave_wal_fsync_duration_seconds_bucket",
    "conclave_peer_messages_sent_total",
    "conclave_peer_bytes_sent_total",
    "conclave_gossip_version_lag_max",
    "conclave_totem_token_rotations_total",
]


class CheckError(Exception):
    pass


def fail(message):
    raise CheckError(message)


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# ---- metric names ----------------------------------------------------------------------------


def function_bodies(text, names):
    """The bodies of the functions called `names` in Rust source, found by brace matching."""
    for match in re.finditer(r"fn (%s)\s*\(" % "|".join(names), text):
        start = text.find("{", match.end())
        depth = 0
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                yield text[start : i + 1]
                break


def exported_metrics():
    """Metric names conclaved exports, read from the sources and docs/metrics.md."""
    names = set()
    const = re.compile(r'pub const [A-Z0-9_]+: &str = "((?:conclave|grpc)_[a-z0-9_]+)"')
    for path in ["crates/conclave-core/src/metrics.rs", "crates/conclave-etcd/src/metrics.rs"]:
        names |= set(const.findall((ROOT / path).read_text(encoding="utf-8")))
    doc = (ROOT / "docs/metrics.md").read_text(encoding="utf-8")
    names |= set(re.findall(r"`((?:conclave|grpc)_[a-z0-9_]+)", doc))
    # Protocol-specific series: the driver exports each (name, value) pair a protocol's
    # counters() returns as conclave_<protocol>_<name>.
    for protocol in PROTOCOLS:
        for source in sorted((ROOT / f"crates/conclave-{protocol}/src").glob("*.rs")):
            text = source.read_text(encoding="utf-8")
            for body in function_bodies(text, ["counters", "export", "counter_values"]):
                for name in re.findall(r'\(\s*"([a-z0-9_]+)"\s*,', body):
                    names.add(f"conclave_{protocol}_{name}")
    if len(names) < 20:
        fail(f"found only {len(names)} exported metric names; has the source layout changed?")
    return names


PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def promql_metrics(expr):
    """Metric names in a PromQL expression (Grafana variables allowed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    clause = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(clause, " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        if word.lower() in PROMQL_KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def known(name, exported):
    if name in exported or name == "up":
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base != name and base.endswith("_seconds") and base in exported


def dashboard_queries(dashboard):
    """(where, PromQL) for every panel target and every query variable of a dashboard."""
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query
        inner = re.fullmatch(r"\s*(?:label_values|query_result)\((.*?)(?:,\s*\w+)?\)\s*", query)
        yield f"variable {variable['name']!r}", inner.group(1) if inner else query


def rule_exprs(path):
    for group in load_yaml(path)["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", str(rule["expr"])


def check_metrics():
    exported = exported_metrics()
    checked = 0
    sources = [
        (str(d.relative_to(ROOT)), dashboard_queries(json.loads(d.read_text())))
        for d in DASHBOARDS
    ]
    sources.append((str(RULES.relative_to(ROOT)), rule_exprs(RULES)))
    for file, queries in sources:
        for where, expr in queries:
            for name in sorted(promql_metrics(expr)):
                checked += 1
                if not known(name, exported):
                    fail(f"{file}: {where} names `{name}`, which conclaved does not export "
                         f"(known: crates/conclave-core/src/metrics.rs, crates/conclave-etcd/src/"
                         f"metrics.rs, docs/metrics.md, each protocol's counters())")
    print(f"ok: {checked} metric references in the dashboards and rules name exported metrics "
          f"({len(exported)} known)")


# ---- rules ------------------------------------------------------------------------------------


def check_rules():
    alerts = {}
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                alerts[rule["alert"]] = rule
    for name, situation in REQUIRED_ALERTS.items():
        if name not in alerts:
            fail(f"{RULES.name}: no alert {name} ({situation})")
    for name, rule in alerts.items():
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            if not annotations.get(key):
                fail(f"{RULES.name}: alert {name} has no {key} annotation")
        anchor = "docs/operations.md#" + name.lower()
        if not annotations["runbook"].startswith(anchor):
            fail(f"{RULES.name}: alert {name}'s runbook should start with {anchor}")
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            fail(f"{RULES.name}: alert {name} needs severity warning or critical")
    operations = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    for name in alerts:
        if not re.search(r"^#+ %s\s*$" % name, operations, re.M):
            fail(f"docs/operations.md has no heading `{name}` for the runbook link")
    fired, quiet = set(), set()
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name in alerts:
        if name not in fired:
            fail(f"deploy/prometheus/tests: no unit test makes {name} fire")
        if name not in quiet:
            fail(f"deploy/prometheus/tests: no unit test checks that {name} stays quiet")
    print(f"ok: {len(alerts)} alerts, each with a runbook, a firing test and a quiet test")


# ---- grafana ----------------------------------------------------------------------------------


def check_grafana():
    if not DASHBOARDS:
        fail("deploy/grafana/dashboards holds no dashboard")
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        name = path.relative_to(ROOT)
        for key in ("uid", "title", "schemaVersion", "panels", "templating"):
            if key not in dashboard:
                fail(f"{name}: no `{key}`")
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        protocol = variables.get("protocol")
        if not protocol or not protocol.get("multi") or not protocol.get("includeAll"):
            fail(f"{name}: needs a multi-value `protocol` variable with All, to compare protocols")
        if variables.get("datasource", {}).get("type") != "datasource":
            fail(f"{name}: needs a `datasource` variable so the dashboard imports anywhere")
        ids = set()
        exprs = []
        stack = list(dashboard["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            if panel["id"] in ids:
                fail(f"{name}: panel id {panel['id']} is used twice")
            ids.add(panel["id"])
            pos = panel.get("gridPos", {})
            if pos.get("x", 0) + pos.get("w", 0) > 24:
                fail(f"{name}: panel {panel.get('title')!r} is wider than the grid")
            if panel.get("type") == "row":
                continue
            if panel.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{name}: panel {panel.get('title')!r} does not use ${{datasource}}")
            if not panel.get("description"):
                fail(f"{name}: panel {panel.get('title')!r} has no description")
            for target in panel.get("targets", []):
                expr = target["expr"]
                exprs.append(expr)
                if "conclave_" in expr and 'protocol=~"$protocol"' not in expr:
                    title = panel.get("title")
                    fail(f"{name}: panel {title!r} ignores the protocol selector: {expr}")
        used = set().union(*(promql_metrics(e) for e in exprs))
        for metric in REQUIRED_DASHBOARD_METRICS:
            if metric not in used:
                fail(f"{name}: no panel charts {metric}")
    provisioning = ROOT / "deploy/grafana/provisioning"
    sources = load_yaml(provisioning / "datasources/prometheus.yml")["datasources"]
    if not any(s.get("type") == "prometheus" and s.get("isDefault") for s in sources):
        fail("deploy/grafana/provisioning/datasources: no default Prometheus datasource")
    providers = load_yaml(provisioning / "dashboards/conclave.yml")["providers"]
    if not providers or providers[0].get("type") != "file":
        fail("deploy/grafana/provisioning/dashboards: no file provider")
    print(f"ok: {len(DASHBOARDS)} dashboard(s) and the provisioning files")


# ---- compose ----------------------------------------------------------------------------------


def interpolate(value):
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR} with nothing set: the defaults."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)
    if re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value):
        fail(f"compose: `{value}` uses a variable without a default")
    return value.replace("$$", "$")


def parse_member(text):
    match = re.fullmatch(r"\s*(\d+)=([^,]+),(.+?)\s*", text)
    if not match:
        fail(f"member `{text}` is not ID=PEER_HOST:PORT,CLIENT_HOST:PORT")
    return int(match.group(1)), match.group(2), match.group(3)


def compose_schema():
    import check_jsonschema  # noqa: F401 (located for its vendored schemas)

    path = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    return json.loads(path.read_text(encoding="utf-8"))


def check_compose(path):
    path = Path(path).resolve()
    raw = load_yaml(path)
    data = interpolate(raw)
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        fail("compose (defaults filled in): " + "; ".join(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]))
    services = data["services"]
    nodes = sorted(n for n in services if n.startswith("conclave-"))
    if len(nodes) != 3:
        fail(f"compose: expected three conclave-N services, found {nodes}")
    subnet = ipaddress.ip_network(data["networks"]["conclave"]["ipam"]["config"][0]["subnet"])
    members_text = None
    for name in nodes:
        service, raw_service = services[name], raw["services"][name]
        env = service["environment"]
        if "${CONCLAVE_PROTOCOL" not in raw_service["environment"]["CONCLAVE_PROTOCOL"]:
            fail(f"compose: {name} does not take its protocol from CONCLAVE_PROTOCOL")
        if env["CONCLAVE_PROTOCOL"] not in PROTOCOLS:
            protocol = env["CONCLAVE_PROTOCOL"]
            fail(f"compose: {name}'s default protocol {protocol!r} is not one of {PROTOCOLS}")
        if members_text not in (None, env["CONCLAVE_MEMBERS"]):
            fail(f"compose: {name} lists different members from the other nodes")
        members_text = env["CONCLAVE_MEMBERS"]
        members = {m[0]: m for m in map(parse_member, json.loads(members_text))}
        node_id = int(env["CONCLAVE_NODE_ID"])
        if node_id not in members:
            fail(f"compose: {name}'s CONCLAVE_NODE_ID {node_id} is not a member")
        address = service["networks"]["conclave"]["ipv4_address"]
        if ipaddress.ip_address(address) not in subnet:
            fail(f"compose: {name}'s address {address} is outside {subnet}")
        for role, endpoint in (("peer", members[node_id][1]), ("client", members[node_id][2])):
            if endpoint.rsplit(":", 1)[0] != address:
                fail(f"compose: member {node_id}'s {role} address {endpoint} "
                     f"is not {name}'s {address}")
        if not any(str(v).endswith(":/var/lib/conclave") for v in service.get("volumes", [])):
            fail(f"compose: {name} keeps no volume at /var/lib/conclave")
        if name != f"conclave-{node_id}":
            fail(f"compose: service {name} runs node {node_id}")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                if not (path.parent / source).exists():
                    fail(f"compose: {name} mounts {source}, which does not exist")
    scrape = load_yaml(ROOT / "deploy/prometheus/prometheus.yml")
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "conclave")
    targets = sorted(t for c in job["static_configs"] for t in c["targets"])
    if targets != [f"{n}:9379" for n in nodes]:
        fail(f"deploy/prometheus/prometheus.yml scrapes {targets}, not the compose nodes")
    print(f"ok: {path.relative_to(ROOT)}: compose spec with defaults filled in, "
          f"{len(nodes)} nodes wired to their members, volumes and scrape targets")


# ---- kubernetes -------------------------------------------------------------------------------

CORE_API_VERSIONS = {"v1", "apps/v1", "policy/v1"}
CRD_SCHEMAS = {
    "ServiceMonitor": "servicemonitor.schema.json",
    "PrometheusRule": "prometheusrule.schema.json",
}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_k8s(overlay, rendered):
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text(encoding="utf-8")) if d]
    by_kind = {}
    for doc in docs:
        kind = doc["kind"]
        by_kind.setdefault(kind, []).append(doc)
        if kind in CRD_SCHEMAS:
            schema = json.loads((ROOT / "deploy/k8s/schemas" / CRD_SCHEMAS[kind]).read_text())
            validator = jsonschema.Draft202012Validator(schema)
            errors = list(validator.iter_errors(doc))
            if errors:
                fail(f"{overlay}: {kind} {doc['metadata']['name']}: " + "; ".join(
                    f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]))
        elif doc["apiVersion"] not in CORE_API_VERSIONS:
            fail(f"{overlay}: {doc['apiVersion']} {kind} has no schema in deploy/k8s/schemas")
    for rule in by_kind.get("PrometheusRule", []):
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(rule["spec"], f)
        result = subprocess.run(
            ["promtool", "check", "rules", f.name], capture_output=True, text=True
        )
        Path(f.name).unlink()
        if result.returncode != 0:
            fail(f"{overlay}: PrometheusRule rules fail promtool:\n{result.stdout}{result.stderr}")

    (sts,) = by_kind["StatefulSet"]
    spec, pod = sts["spec"], sts["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    if not selects(spec["selector"]["matchLabels"], pod_labels):
        fail(f"{overlay}: the StatefulSet's selector does not match its pods")
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    peer = services.get(spec["serviceName"])
    if not peer or peer["spec"].get("clusterIP") != "None":
        fail(f"{overlay}: serviceName {spec['serviceName']} is not a headless Service")
    if peer["spec"].get("publishNotReadyAddresses") is not True:
        fail(f"{overlay}: the headless Service must publish not-ready addresses")
    clients = [s for s in services.values() if s["spec"].get("clusterIP") != "None"
               and selects(s["spec"]["selector"], pod_labels)
               and any(p["port"] == 2379 for p in s["spec"]["ports"])]
    if not clients:
        fail(f"{overlay}: no client Service on port 2379 selects the pods")
    if spec.get("podManagementPolicy") != "Parallel":
        fail(f"{overlay}: podManagementPolicy must be Parallel (a lone first pod is never ready)")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    (container,) = pod["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    if not claims or not any(mounts.get(c) == "/var/lib/conclave" for c in claims):
        fail(f"{overlay}: no volume claim template mounted at /var/lib/conclave")
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/health":
        fail(f"{overlay}: the readiness probe must GET /health")
    if "livenessProbe" not in container:
        fail(f"{overlay}: no liveness probe")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health":
        fail(f"{overlay}: a /health liveness probe restarts every node when the quorum is lost")
    requests = container.get("resources", {}).get("requests", {})
    if not {"cpu", "memory"} <= requests.keys():
        fail(f"{overlay}: the container needs cpu and memory requests")
    (pdb,) = by_kind["PodDisruptionBudget"]
    if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        fail(f"{overlay}: the PodDisruptionBudget does not select the pods")

    configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    env_refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
    protocols = [configmaps[n]["data"].get("CONCLAVE_PROTOCOL") for n in env_refs]
    if protocols != [overlay]:
        fail(f"{overlay}: the pods get CONCLAVE_PROTOCOL {protocols}, expected [{overlay!r}]")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    config_map = configmaps[volumes["config"]["configMap"]["name"]]
    config = tomllib.loads(config_map["data"]["conclave.toml"])
    if "protocol" in config:
        fail(f"{overlay}: conclave.toml sets the protocol: keep it in the overlay alone")
    members = [parse_member(m) for m in config["members"]]
    if len(members) != spec["replicas"]:
        fail(f"{overlay}: {len(members)} members for {spec['replicas']} replicas")
    for index, (node_id, peer_addr, client_addr) in enumerate(members):
        host = f"{sts['metadata']['name']}-{index}.{spec['serviceName']}"
        if (node_id, peer_addr, client_addr) != (index + 1, f"{host}:2380", f"{host}:2379"):
            fail(f"{overlay}: member {node_id} should be {index + 1}={host}:2380,{host}:2379")

    (monitor,) = by_kind["ServiceMonitor"]
    watched = [s for s in services.values() if selects(monitor["spec"]["selector"]["matchLabels"],
                                                       s["metadata"].get("labels", {}))]
    if watched != [peer]:
        fail(f"{overlay}: the ServiceMonitor should select the headless Service alone")
    ports = {p["name"] for p in peer["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint["port"] not in ports:
            fail(f"{overlay}: the ServiceMonitor scrapes port {endpoint['port']}, "
                 f"which {peer['metadata']['name']} lacks")
    job = peer["metadata"]["labels"].get(monitor["spec"].get("jobLabel", ""))
    if job != "conclave":
        fail(f"{overlay}: scraped series would get job={job!r}; "
             "the alert rules select job=\"conclave\"")
    print(f"ok: overlay {overlay}: custom resources, rules and wiring ({len(docs)} objects)")


# ---- dockerfile -------------------------------------------------------------------------------


def check_dockerfile(path):
    path = Path(path).resolve()
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [(line.split()[0].upper(), line) for line in lines]
    stages = [line for op, line in instructions if op == "FROM"]
    if len(stages) < 2:
        fail(f"{path.name}: expected a multi-stage build")
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    users = [line.split()[1] for op, line in final if op == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail(f"{path.name}: the runtime stage must run as a non-root USER")
    health = [line for op, line in final if op == "HEALTHCHECK"]
    if not health or "healthcheck" not in health[-1]:
        fail(f"{path.name}: the runtime stage needs a HEALTHCHECK")
    if not any(op == "VOLUME" and "/var/lib/conclave" in line for op, line in final):
        fail(f"{path.name}: the data directory /var/lib/conclave must be a VOLUME")
    for op, line in instructions:
        if op == "COPY" and "--from" not in line:
            for source in line.split()[1:-1]:
                if not source.startswith("--") and source != "." and not (ROOT / source).exists():
                    fail(f"{path.name}: COPY {source}: no such file in the repository")
    healthcheck = (ROOT / "deploy/docker/healthcheck.sh").read_text(encoding="utf-8")
    if "/health" not in healthcheck:
        fail("deploy/docker/healthcheck.sh does not ask /health")
    print(f"ok: {path.relative_to(ROOT)}: {len(stages)} stages, non-root, healthcheck, data volume")


def main(argv):
    commands = {
        "rules": (check_rules, 0),
        "metrics": (check_metrics, 0),
        "grafana": (check_grafana, 0),
        "compose": (check_compose, 1),
        "k8s": (check_k8s, 2),
        "dockerfile": (check_dockerfile, 1),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]][0](*argv[2:])
    except CheckError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
