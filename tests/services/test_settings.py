"""What the services are started with: rendered configs, start keys, env lines, versions."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
from weaver_services import SERVICES, mindsdb, neo4j, postgres, trino
from weaver_services.cli import main, render_env, select
from weaver_services.layout import REPO_ROOT, Layout
from weaver_services.process import ServiceError
from weaver_services.service import Status, start_key

from weaver.testing.live import SAMPLE_ENV

# Every variable the shell script exported (the live suites and .ci/run read them), and
# the one Trino adds.
EXPORTED = {
    "POSTGRES_DSN",
    *SAMPLE_ENV,
    "REDIS_URL",
    "NEO4J_URI",
    "NEO4J_USER",
    "NEO4J_PASSWORD",
    "MINDSDB_URL",
    "TRINO_URL",
    "TRINO_USER",
}


def shell_env(output: str) -> dict[str, str]:
    """What bash has after ``eval`` of the output."""
    names = re.findall(r"^export ([A-Z0-9_]+)=", output, re.M)
    script = output + "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    values = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return dict(zip(names, values.decode().split("\0")[:-1], strict=True))


def test_start_key_is_the_shell_scripts_digest() -> None:
    parts = ["5.26.30", "a b", "", "pass'word $x"]
    script = 'printf "%s\\n" "$@" | sha256sum'
    out = subprocess.run(["bash", "-c", script, "-", *parts], capture_output=True, check=True)
    assert start_key(*parts) == out.stdout.split()[0].decode()


def test_neo4j_key_names_the_launcher_as_sha256sum_printed_it(layout: Layout) -> None:
    printed = (
        subprocess.run(
            ["bash", "-c", f"sha256sum < {neo4j.LAUNCHER}"], capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    assert neo4j.Neo4j(layout, {}).start_key() == start_key(
        neo4j.VERSION, printed, "7687", "768m", "128", "neo4j", "weaver_dev_password"
    )


def test_a_changed_setting_asks_for_a_restart(layout: Layout) -> None:
    first = trino.Trino(layout, {"WEAVER_TRINO_JAVA_HOME": "/jdk"})
    first.record_key()
    assert not first.needs_restart()
    assert trino.Trino(
        layout, {"WEAVER_TRINO_JAVA_HOME": "/jdk", "WEAVER_TRINO_HEAP": "768M"}
    ).needs_restart()
    assert trino.Trino(
        layout, {"WEAVER_TRINO_JAVA_HOME": "/jdk", "TRINO_USER": "other"}
    ).needs_restart()


def test_env_keeps_every_variable_and_survives_the_shell(layout: Layout) -> None:
    environ = {"NEO4J_PASSWORD": 'it\'s $HOME "quoted"', "WEAVER_PG_PORT": "6543"}
    values = shell_env(render_env(select([], layout, environ)))
    assert set(values) == EXPORTED
    assert values["NEO4J_PASSWORD"] == environ["NEO4J_PASSWORD"]
    assert values["POSTGRES_DSN"] == (
        "postgresql://sample_user:sample_password@127.0.0.1:6543/weaver_meta"
    )
    assert values["TRINO_URL"] == "http://127.0.0.1:18080"


def test_env_names_mindsdb_credentials_only_when_both_are_set(layout: Layout) -> None:
    one = shell_env(render_env(select(["mindsdb"], layout, {"MINDSDB_USER": "weaver"})))
    assert set(one) == {"MINDSDB_URL"}
    both = {"MINDSDB_USER": "weaver", "MINDSDB_PASSWORD": "secret"}
    assert shell_env(render_env(select(["mindsdb"], layout, both))) == {
        "MINDSDB_URL": "http://127.0.0.1:47334",
        **both,
    }


def test_the_exit_gate_finds_what_it_requires(layout: Layout) -> None:
    gate = (REPO_ROOT / "scripts/weaver_external_exit_gate.py").read_text()
    required = re.search(r"REQUIRED_ENV = \((.*?)\)", gate, re.S)
    assert required
    names = set(re.findall(r'"([A-Z0-9_]+)"', required.group(1)))
    assert names and names <= set(shell_env(render_env(select([], layout, {}))))


def test_services_are_selected_in_a_fixed_order(layout: Layout) -> None:
    assert [s.name for s in select(["trino", "postgres"], layout, {})] == ["postgres", "trino"]
    assert [s.name for s in select([], layout, {})] == [c.name for c in SERVICES]
    with pytest.raises(ServiceError, match="unknown service 'mysql'"):
        select(["mysql"], layout, {})


def test_env_command_prints_the_export_lines(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"WEAVER_STATE_DIR": str(layout.state_dir), "WEAVER_REDIS_PORT": "6390"}
    assert main(["env", "redis"], environ) == 0
    assert capsys.readouterr().out == "export REDIS_URL=redis://127.0.0.1:6390/0\n"


def test_status_lines_line_up() -> None:
    assert Status("redis", True, "127.0.0.1:6379", "pid 7").line() == (
        "redis    up   127.0.0.1:6379 pid 7"
    )
    assert Status("trino", False, "http://127.0.0.1:18080", "x").line() == (
        "trino    down http://127.0.0.1:18080"
    )


# ------------------------------------------------------------------ postgres --


def test_postgres_settings_are_the_ones_the_running_cluster_has() -> None:
    # Byte for byte what the shell script wrote: a difference would restart the cluster.
    rendered = postgres.render_settings(5433)
    assert rendered.startswith("# Written by scripts/services.sh; edits are overwritten.\n")
    assert "listen_addresses = '127.0.0.1'\nport = 5433\n" in rendered
    assert rendered.endswith("full_page_writes = off\n")


def test_a_fixture_marker_follows_the_file(tmp_path: Path) -> None:
    fixture = tmp_path / "f.sql"
    fixture.write_text("select 1;\n")
    first = postgres.fixture_marker(fixture)
    assert first.startswith("weaver-fixture f.sql sha256:")
    fixture.write_text("select 2;\n")
    assert postgres.fixture_marker(fixture) != first


# ------------------------------------------------------------------- mindsdb --


def test_mindsdb_config_turns_auth_on_only_with_both_credentials() -> None:
    plain = mindsdb.render_config(47334)
    assert plain["api"] == {
        "http": {
            "host": "127.0.0.1",
            "port": "47334",
            "a2wsgi": {"workers": mindsdb.HTTP_WORKERS, "send_queue_size": 10},
        }
    }
    assert "auth" not in plain and "auth" not in mindsdb.render_config(1, "weaver", "")
    assert mindsdb.render_config(1, "weaver", "pw")["auth"] == {
        "http_auth_enabled": True,
        "username": "weaver",
        "password": "pw",
    }


def test_mindsdb_restarts_when_its_config_changes(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = mindsdb.MindsDB(layout, {})
    started.record_key()
    assert not started.needs_restart()
    monkeypatch.setattr(mindsdb, "HTTP_WORKERS", mindsdb.HTTP_WORKERS + 1)
    assert mindsdb.MindsDB(layout, {}).needs_restart()


def test_mindsdb_config_file_is_for_its_owner_only(tmp_path: Path) -> None:
    config = tmp_path / "mindsdb" / "config.json"
    mindsdb.write_config(config, 5000, "weaver", "pw")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["auth"]["password"] == "pw"


def test_mindsdb_never_sees_the_credential_variables(tmp_path: Path) -> None:
    environ = {"MINDSDB_USERNAME": "a", "MINDSDB_PASSWORD": "b", "MINDSDB_USER": "c", "X": "1"}
    assert mindsdb.server_environ(environ, tmp_path) == {
        "X": "1",
        "MINDSDB_STORAGE_DIR": str(tmp_path),
    }


def test_versions_are_pinned_once_and_the_other_files_agree() -> None:
    constraints = (REPO_ROOT / "scripts/mindsdb/constraints.txt").read_text()
    assert f"\nmindsdb=={mindsdb.VERSION}\n" in constraints
    compose = (REPO_ROOT / "docker-compose.dev.yml").read_text()
    assert f"image: mindsdb/mindsdb:v{mindsdb.VERSION}\n" in compose
    assert f"image: trinodb/trino:{trino.VERSION}\n" in compose
    pom = (REPO_ROOT / "scripts/neo4j/pom.xml").read_text()
    assert f"<neo4j.version>{neo4j.VERSION}</neo4j.version>" in pom


# --------------------------------------------------------------------- trino --


def test_trino_coordinator_schedules_nothing_and_keeps_catalogs_in_memory() -> None:
    plugins = Path("/state/trino/plugin")
    coordinator = trino.render_config_properties(trino.Node("coordinator", 18080), 18080, plugins)
    worker = trino.render_config_properties(trino.Node("worker", 18081), 18080, plugins)
    assert "coordinator=true\n" in coordinator and "coordinator=false\n" in worker
    assert "node-scheduler.include-coordinator=false\n" in coordinator
    assert "catalog.store=memory\n" in coordinator
    # A worker refuses to start with a property it does not use.
    assert "catalog.store" not in worker and "include-coordinator" not in worker
    for config in (coordinator, worker):
        assert "discovery.uri=http://127.0.0.1:18080\n" in config
        assert "catalog.management=dynamic\n" in config
        assert "plugin.dir=/state/trino/plugin\n" in config


def test_trino_nodes_bind_loopback_with_their_own_id_and_data(tmp_path: Path) -> None:
    node = trino.render_node_properties(trino.Node("worker", 18081), tmp_path / "data")
    assert "node.id=weaver-worker\n" in node
    assert f"node.data-dir={tmp_path / 'data'}\n" in node
    assert "node.bind-ip=127.0.0.1\n" in node and "node.internal-address=127.0.0.1\n" in node
    assert "-Xmx768M\n" in trino.render_jvm_config("768M")


def test_trino_rules_let_only_the_admin_see_others_queries() -> None:
    rules = trino.render_rules("weaver.admin")
    assert rules["queries"] == [
        {"user": r"weaver\.admin", "allow": ["execute", "view", "kill"]},
        {"allow": ["execute"]},
    ]
    assert rules["catalogs"] == [
        {"user": r"weaver\.admin", "allow": "owner"},
        {"allow": "read-only"},
    ]
    # The pass-through table function (Weaver's key queries) is the admin's alone.
    assert rules["functions"] == [
        {
            "user": r"weaver\.admin",
            "schema": "system",
            "function": "query",
            "privileges": ["EXECUTE"],
        },
        {"catalog": "system", "schema": "builtin", "privileges": ["EXECUTE"]},
    ]


def test_trino_files_per_node(layout: Layout) -> None:
    service = trino.Trino(layout, {"WEAVER_TRINO_PORT": "19000"})
    files = service.rendered()
    assert [node.port for node in files] == [19000, 19001]
    coordinator, worker = files
    assert set(files[coordinator]) == {
        "node.properties",
        "jvm.config",
        "config.properties",
        "rules.json",
        "access-control.properties",
    }
    assert set(files[worker]) == {"node.properties", "jvm.config", "config.properties"}
    rules_file = layout.state_dir / "trino/coordinator/etc/rules.json"
    assert f"security.config-file={rules_file}\n" in files[coordinator]["access-control.properties"]


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin/java").touch()
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home


def test_trino_takes_the_newest_jdk_it_accepts(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    with pytest.raises(ServiceError, match="no JDK 24"):
        trino.find_java_home({}, tmp_path)
    newest = fake_jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.1")
    fake_jdk(tmp_path, "temurin-24-jdk-amd64", "24.0.2")
    assert trino.find_java_home({}, tmp_path) == newest
    assert trino.find_java_home({"WEAVER_TRINO_JAVA_HOME": "/opt/jdk"}, tmp_path) == Path(
        "/opt/jdk"
    )


def test_stage_nodes_walks_sub_stages() -> None:
    stage = {
        "tasks": [{"taskStatus": {"nodeId": "weaver-worker"}}],
        "subStages": [{"tasks": [{"taskStatus": {"nodeId": "w2"}}], "subStages": [{"tasks": []}]}],
    }
    assert trino.stage_nodes(stage) == {"weaver-worker", "w2"}


def test_trino_kill_worker_needs_a_running_worker(layout: Layout) -> None:
    service = trino.Trino(layout, {"WEAVER_TRINO_PORT": "19000"})
    # No pid file in this layout: nothing is signalled, whatever runs on the machine.
    assert service.kill_worker() is False
