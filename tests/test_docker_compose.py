"""docker-compose.yml: services, images, volumes and the files its commands name.

The file is parsed as YAML, so these checks need no Docker. The last test also runs
`docker compose config` (or the standalone `docker-compose config`), which validates
the file without an engine, when such a client is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pyspark
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROJECT_MOUNT = "/opt/stratify"
SPARK_SERVICES = ("master", "worker-1", "worker-2")
DRIVER_SERVICES = ("submit", "thrift")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def entrypoint_script(service: dict) -> str:
    return "\n".join(service["entrypoint"])


def project_paths(text: str) -> list[str]:
    """Return the paths under the project mount that a command names, relative to the checkout."""
    return [match[len(PROJECT_MOUNT) + 1:] for match in re.findall(rf"{PROJECT_MOUNT}/[\w./*-]+", text)]


def test_compose_services(compose):
    assert set(compose["services"]) == {*SPARK_SERVICES, "pydeps", *DRIVER_SERVICES}


def test_compose_image_matches_pyspark(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert image.startswith("apache/spark:"), f"{name}: {image}"
        assert image.split(":")[1].startswith(f"{pyspark.__version__}-"), f"{name}: {image}"


def test_compose_master_and_workers(compose):
    services = compose["services"]
    assert "org.apache.spark.deploy.master.Master" in services["master"]["command"]
    assert "--port 7077" in services["master"]["command"]
    for worker in ("worker-1", "worker-2"):
        command = services[worker]["command"]
        assert "org.apache.spark.deploy.worker.Worker" in command
        assert command.endswith("spark://master:7077")
        assert "--cores 1" in command


def test_compose_ports_loopback_only(compose):
    published = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert sorted(published) == ["127.0.0.1:10000:10000", "127.0.0.1:7077:7077", "127.0.0.1:8080:8080"]


def test_compose_shared_warehouse(compose):
    assert set(compose["volumes"]) == {"warehouse", "pydeps"}
    for name in (*SPARK_SERVICES, *DRIVER_SERVICES):
        volumes = compose["services"][name]["volumes"]
        assert "warehouse:/warehouse" in volumes, name
        assert f".:{PROJECT_MOUNT}:ro" in volumes, name
        assert compose["services"][name]["environment"]["STRATIFY_WAREHOUSE"] == "/warehouse"


def test_compose_drivers_submit_to_master(compose):
    for name in DRIVER_SERVICES:
        script = entrypoint_script(compose["services"][name])
        assert "--master spark://master:7077" in script, name
        assert '--py-files "$$package"' in script, name
        assert '--jars "$$jars"' in script, name
        assert compose["services"][name]["depends_on"]["pydeps"]["condition"] == "service_completed_successfully"


def test_compose_mounted_files_exist(compose):
    """Every project path a command names exists in the checkout, and the globs match what set-up writes."""
    subprocess.run([str(ROOT / "scripts" / "package.sh")], capture_output=True, text=True, check=True, timeout=60)
    named = []
    for service in compose["services"].values():
        command = service.get("command", "")
        named += project_paths(command if isinstance(command, str) else " ".join(command))
        named += project_paths(entrypoint_script(service)) if "entrypoint" in service else []
    assert "scripts/thrift_server.py" in named
    assert ".cache/jars/*/*.jar" in named
    assert "dist/stratify_spark-*.zip" in named
    for path in named:
        assert list(ROOT.glob(path)), f"{path} named in docker-compose.yml matches nothing under {ROOT}"


def test_compose_pins_installed_delta(compose):
    script = entrypoint_script(compose["services"]["pydeps"])
    assert f'"delta-spark=={metadata.version("delta-spark")}"' in script


def test_readme_compose_commands_name_real_files():
    for readme in ("README.md", "README.pt-BR.md"):
        commands = [line.strip() for line in (ROOT / readme).read_text(encoding="utf-8").splitlines()
                    if line.strip().startswith("docker compose run --rm submit ")]
        assert len(commands) >= 2, f"{readme} shows no 'docker compose run --rm submit' commands"
        for command in commands:
            words = command.split()
            assert (ROOT / words[5]).is_file(), f"{readme}: {words[5]} does not exist"
            config = words[words.index("--config") + 1]
            assert (ROOT / config).is_file(), f"{readme}: {config} does not exist"


def compose_command() -> list[str] | None:
    """Return the command that runs Compose: the docker plugin, else the standalone docker-compose, else None."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="no Docker Compose client installed (docker compose "
                                                      "or docker-compose); the YAML checks above still ran")
def test_compose_config_validates():
    completed = subprocess.run([*compose_command(), "-f", str(COMPOSE_FILE), "config", "--quiet"],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
