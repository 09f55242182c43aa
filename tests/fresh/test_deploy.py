"""deploy/: the recipes are files, and what can be checked here is checked against a real bundle.

The manifests parse; every path they name and every ``KEEPALIVE_PATCH_*`` variable they set match
what the bundle the tests built (``bundle_dir``) really contains and what ``config.TABLE``
accepts; the Dockerfile builds the directory with the command the tests ran.  A real cluster,
Docker daemon or systemd are not used here (README says so).
"""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from support import bundles
from support.procs import REPO

import keepalive_patch
from keepalive_patch import bundle, config

pytestmark = pytest.mark.fleet

yaml = pytest.importorskip("yaml")

DEPLOY = REPO / "deploy"
#: Where every recipe puts the bundle inside a container or host.
DIRECTORY = "/opt/keepalive-patch"
PYTHONPATH = f"{DIRECTORY}/{bundle.BOOTSTRAP}"
IMAGE = f"keepalive-patch-init:{keepalive_patch.__version__}"
SETTINGS = {setting.env for setting in config.TABLE} | {config.DISABLE_VAR}


def load(relative: str) -> "list[Any]":
    return list(yaml.safe_load_all((DEPLOY / relative).read_text()))


def dockerfile() -> "list[tuple[str, str]]":
    """The Dockerfile's instructions as (keyword, rest), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def env_of(container: "dict[str, Any]") -> "dict[str, str]":
    return {item["name"]: item["value"] for item in container.get("env", [])}


def assert_bootstrap_path(path: str, bundle_dir: Path) -> None:
    """``path``, as seen inside a container, is the bundle's bootstrap directory."""
    assert path == PYTHONPATH
    inside = bundle_dir / Path(path).relative_to(DIRECTORY)
    assert (inside / "sitecustomize.py").is_file()


def assert_settings(env: "dict[str, str]") -> None:
    """Every KEEPALIVE_PATCH_* variable set is one of ours, with a value it accepts."""
    by_env = {setting.env: setting for setting in config.TABLE}
    for name, value in env.items():
        if name.startswith(config.ENV_PREFIX):
            assert name in SETTINGS, name
            by_env[name].check(by_env[name].parse(value))


def test_the_dockerfile_builds_the_bundle_as_the_tests_do(bundle_dir: Path) -> None:
    steps = dockerfile()
    runs = [shlex.split(rest) for keyword, rest in steps if keyword == "RUN"]
    builds = [argv for argv in runs if argv[:2] == list(bundles.COMMAND)]
    assert builds == [[*bundles.COMMAND, DIRECTORY]]  # the tests ran COMMAND + a directory
    assert ("COPY", f"--from=build {DIRECTORY} {DIRECTORY}") in steps
    assert ("VOLUME", DIRECTORY) in steps
    cmd = [json for keyword, json in steps if keyword == "CMD"]
    assert yaml.safe_load(cmd[0]) == ["cp", "-a", f"{DIRECTORY}/.", "/mnt/keepalive-patch/"]
    assert (bundle_dir / bundle.MANIFEST).is_file()  # what that step leaves in the image


def init_command() -> "list[str]":
    cmd = [rest for keyword, rest in dockerfile() if keyword == "CMD"]
    command: list[str] = yaml.safe_load(cmd[0])
    return command


def assert_pod(spec: "dict[str, Any]", bundle_dir: Path, app: str = "app") -> None:
    """An init container that copies the image's bundle into the emptyDir, and the app container
    mounting it read-only at DIRECTORY with PYTHONPATH on its bootstrap."""
    (init,) = spec["initContainers"]
    assert init["image"] == IMAGE
    assert init["command"] == init_command()
    (copied_to,) = init["volumeMounts"]
    assert copied_to["mountPath"] == init_command()[-1].rstrip("/")
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert "emptyDir" in volumes[copied_to["name"]]
    (container,) = [c for c in spec["containers"] if c["name"] == app]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    mount = mounts[copied_to["name"]]
    assert (mount["mountPath"], mount["readOnly"]) == (DIRECTORY, True)
    env = env_of(container)
    assert_bootstrap_path(env["PYTHONPATH"], bundle_dir)
    assert_settings(env)


def test_kubernetes_deployment(bundle_dir: Path) -> None:
    (deployment,) = load("kubernetes/deployment.yaml")
    assert deployment["kind"] == "Deployment"
    assert_pod(deployment["spec"]["template"]["spec"], bundle_dir)


def test_kustomize_patch_adds_it_to_an_existing_deployment(bundle_dir: Path) -> None:
    (kustomization,) = load("kubernetes/kustomize/kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes/kustomize" / resource).is_file()
    (patch,) = kustomization["patches"]
    (patched,) = load(f"kubernetes/kustomize/{patch['path']}")
    (existing,) = load("kubernetes/kustomize/your-deployment.yaml")
    assert patch["target"] == {"kind": "Deployment", "name": existing["metadata"]["name"]}
    assert patched["metadata"]["name"] == existing["metadata"]["name"]
    names = [c["name"] for c in existing["spec"]["template"]["spec"]["containers"]]
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == names
    assert_pod(patched["spec"]["template"]["spec"], bundle_dir)


def test_docker_compose_and_run(bundle_dir: Path) -> None:
    (compose,) = load("docker/compose.yaml")
    services = compose["services"]
    assert services["keepalive-patch"]["image"] == IMAGE
    app = services["app"]
    assert app["volumes_from"] == ["keepalive-patch:ro"]
    assert_bootstrap_path(app["environment"]["PYTHONPATH"], bundle_dir)
    assert_settings(app["environment"])
    script = (DEPLOY / "docker/run.sh").read_text()
    lines = re.sub(r"\\\n", " ", script).splitlines()
    commands = [shlex.split(line, comments=True) for line in lines]
    commands = [argv for argv in commands if argv and argv[0] == "docker"]
    assert commands[0] == ["docker", "create", "--name", "keepalive-patch", IMAGE]
    run = commands[1]
    assert run[run.index("--volumes-from") + 1] == "keepalive-patch:ro"
    env = dict(run[i + 1].split("=", 1) for i, arg in enumerate(run) if arg == "-e")
    assert_bootstrap_path(env["PYTHONPATH"], bundle_dir)
    assert_settings(env)


def test_systemd_drop_in(bundle_dir: Path) -> None:
    text = (DEPLOY / "systemd/keepalive-patch.conf").read_text()
    assert "[Service]" in text.splitlines()
    env = dict(
        line.split("=", 1)[1].split("=", 1)
        for line in text.splitlines()
        if line.startswith("Environment=")
    )
    assert_bootstrap_path(env["PYTHONPATH"], bundle_dir)
    assert_settings(env)
    assert f"#     {' '.join(bundles.COMMAND)} {DIRECTORY}" in text.splitlines()


def test_readme_points_to_deploy_and_says_what_was_not_tested() -> None:
    readme = (REPO / "README.md").read_text()
    assert "(deploy/)" in readme
    assert "Not tested here: a real cluster, Docker or systemd, and musl." in readme
