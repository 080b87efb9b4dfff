"""deploy/kubernetes and deploy/Dockerfile, checked offline (no cluster is reachable here).

Every manifest is validated against the Kubernetes JSON schemas (``kubernetes-validate``, strict: an
unknown or misspelt field fails), and the wiring a schema cannot see is checked against the real CLI:
each container runs a real ``smithers`` subcommand whose options parse (``make_context`` of the Typer
command: names *and* values), the Secret keys the pods read exist, the Service selects the ``serve``
pods, ``serve`` listens beyond loopback only with a token from the Secret, and the images name the
version that pyproject.toml and the Dockerfile build. Each check returns its problems as strings, so
the last tests can break a manifest in memory and see the check catch it.
"""

from __future__ import annotations

import copy
import itertools
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml
from typer.exceptions import TyperException

from smithers.authoring.policies import parse_duration
from smithers.cli.app import app
from smithers.cli.main import register_all_commands
from smithers.errors import UserError
from smithers.server import check_bind, is_loopback

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])

# a release two years old when this was written (older clusters may lack fields used here), and the newest the schemas know
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
SECRET_NAME = "smithers"  # the secretGenerator's name (kustomize appends a content hash when it builds)
DURATION_OPTIONS = frozenset({"--interval", "--stale-threshold", "--lease-timeout"})

# `smithers worker` is built on another branch (DESIGN §10.2) and may not be registered yet. Only while
# the command is ABSENT are its options checked against this list, copied from DESIGN §10.2's synopsis
# `smithers worker [--concurrency N] [--name NAME] [--lease-timeout 30s]` (plus the --db every command
# takes); once the command exists, the real CLI is the only authority and this list is not consulted.
DESIGN_WORKER_OPTIONS = {"--concurrency": int, "--name": str, "--lease-timeout": str, "--db": str}

register_all_commands()
CLI = typer.main.get_command(app)


# -- loading --------------------------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every object of every file the kustomization lists."""
    found = []
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            if doc:
                found.append((name, doc))
    return found


def generated_secrets() -> dict[str, dict[str, str]]:
    """The Secrets the kustomization generates, with the values of the committed ``*.example`` env files
    (the real ``secrets.env`` is git-ignored)."""
    secrets = {}
    for generator in kustomization().get("secretGenerator", []):
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            for line in (K8S / f"{env_file}.example").read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    data[key.strip()] = value
        secrets[generator["name"]] = data
    return secrets


def secret_objects() -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": data}
            for name, data in generated_secrets().items()]


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Deployment"}


def containers(objects: list[dict[str, Any]], *, init: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, deployment in deployments(objects).items():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("containers", []) + (spec.get("initContainers", []) if init else []):
            yield f"{name}/{container['name']}", container


def objects() -> list[dict[str, Any]]:
    return [obj for _, obj in manifests()]


# -- the checks (each returns its problems) -------------------------------------------------------------------


def expand(args: list[str], env: list[dict[str, Any]]) -> list[str]:
    """Kubernetes' $(VAR) expansion of args, with placeholders for the variables the container defines."""
    defined = {item["name"] for item in env}
    return [re.sub(r"\$\((\w+)\)", lambda m: f"<{m.group(1)}>" if m.group(1) in defined else m.group(0), arg) for arg in args]


def command_problems(where: str, container: dict[str, Any]) -> list[str]:
    """The container runs ``smithers SUBCOMMAND OPTIONS`` (the image's entrypoint) and the real CLI parses them."""
    if "command" in container:
        return [f"{where}: sets `command`, which replaces the image's entrypoint (tini -- smithers); give `args` only"]
    args = expand([str(arg) for arg in container.get("args", [])], container.get("env", []))
    if not args:
        return [f"{where}: no args: the first must be a smithers subcommand"]
    if unexpanded := [arg for arg in args if "$(" in arg]:
        return [f"{where}: {unexpanded} name variables the container does not define in `env`"]
    sub, options = args[0], args[1:]
    problems = []
    command = CLI.commands.get(sub)  # type: ignore[attr-defined]
    if command is None and sub == "worker":
        problems += design_worker_problems(where, options)
    elif command is None:
        return [f"{where}: `smithers {sub}` is not a smithers command"]
    else:
        try:
            command.make_context(f"smithers {sub}", list(options))
        except TyperException as err:  # click's NoSuchOption/BadParameter/...: the message names the option
            problems.append(f"{where}: `smithers {' '.join(args)}`: {err}")
    for flag, value in itertools.pairwise(options):
        if flag in DURATION_OPTIONS:
            try:
                parse_duration(value, field=flag)
            except ValueError as err:
                problems.append(f"{where}: {err}")
    return problems


def design_worker_problems(where: str, options: list[str]) -> list[str]:
    problems, rest = [], list(options)
    while rest:
        flag = rest.pop(0)
        kind = DESIGN_WORKER_OPTIONS.get(flag.split("=", 1)[0])
        if kind is None:
            problems.append(f"{where}: `smithers worker` has no option {flag} (DESIGN §10.2)")
            continue
        value = flag.split("=", 1)[1] if "=" in flag else (rest.pop(0) if rest else None)
        if value is None or (kind is int and not value.isdigit()):
            problems.append(f"{where}: smithers worker {flag} needs a {kind.__name__} value, got {value!r}")
    return problems


def secret_ref_problems(objs: list[dict[str, Any]], secrets: dict[str, dict[str, str]]) -> list[str]:
    """Every Secret/ConfigMap a pod reads exists (and has the key), unless the reference is optional."""
    config_maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in objs if obj["kind"] == "ConfigMap"}
    problems = []
    for where, container in containers(objs, init=True):
        for item in container.get("env", []):
            source = item.get("valueFrom", {})
            for kind, pool in (("secretKeyRef", secrets), ("configMapKeyRef", config_maps)):
                ref = source.get(kind)
                if ref and not ref.get("optional") and ref["key"] not in pool.get(ref["name"], {}):
                    problems.append(f"{where}: env {item['name']} reads {kind} {ref['name']}/{ref['key']}, which does not exist")
        for item in container.get("envFrom", []):
            for kind, pool in (("secretRef", secrets), ("configMapRef", config_maps)):
                ref = item.get(kind)
                if ref and not ref.get("optional") and ref["name"] not in pool:
                    problems.append(f"{where}: envFrom {kind} {ref['name']} does not exist (and is not optional)")
    return problems


def service_problems(objs: list[dict[str, Any]]) -> list[str]:
    """The serve Service selects exactly the serve Deployment's pods, on a port its container names."""
    services = [obj for obj in objs if obj["kind"] == "Service"]
    if not services:
        return ["no Service for smithers serve"]
    problems = []
    for service in services:
        selector = service["spec"].get("selector", {})
        selected = [name for name, deployment in deployments(objs).items()
                    if selector and selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()]
        if len(selected) != 1:
            name = service["metadata"]["name"]
            problems.append(f"Service {name}: selector {selector} matches the pods of {selected}, not one Deployment")
            continue
        pod = deployments(objs)[selected[0]]["spec"]["template"]["spec"]
        if not any(c.get("args", [None])[0] == "serve" for c in pod["containers"]):
            problems.append(f"Service {service['metadata']['name']} selects {selected[0]}, which does not run smithers serve")
        ports = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])} | {
            p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if port.get("targetPort", port["port"]) not in ports:
                target = port.get("targetPort")
                problems.append(f"Service {service['metadata']['name']}: targetPort {target} is not a port of {selected[0]}")
    return problems


def option_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return str(args[i + 1])
        if str(arg).startswith(flag + "="):
            return str(arg).split("=", 1)[1]
    return None


def serve_token_problems(objs: list[dict[str, Any]], secrets: dict[str, dict[str, str]]) -> list[str]:
    """``serve`` beyond loopback has a token, and the token comes from a Secret (never a literal in the spec)."""
    problems = []
    for where, container in containers(objs):
        args = [str(arg) for arg in container.get("args", [])]
        if args[:1] != ["serve"]:
            continue
        host = option_value(args, "--host") or "127.0.0.1"
        env = {item["name"]: item for item in container.get("env", [])}
        token = None
        if option_value(args, "--auth-token") is not None:
            problems.append(f"{where}: --auth-token in args puts the token in the pod spec; read it from the Secret as $SMITHERS_API_KEY")
        elif "SMITHERS_API_KEY" in env:
            ref = env["SMITHERS_API_KEY"].get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                problems.append(f"{where}: SMITHERS_API_KEY is a literal value; take it from a Secret (secretKeyRef)")
            else:
                token = secrets.get(ref["name"], {}).get(ref["key"])
        try:
            check_bind(host, token)  # the server's own rule: beyond loopback needs a token
        except UserError as err:
            problems.append(f"{where}: {err}")
        if is_loopback(host):
            problems.append(f"{where}: --host {host} is loopback: the Service could not reach it")
    if not any(str(c.get("args", [""])[0]) == "serve" for _, c in containers(objs)):
        problems.append("no container runs smithers serve")
    return problems


def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def image_problems(objs: list[dict[str, Any]], kustomize: dict[str, Any]) -> list[str]:
    """One image everywhere, tagged with pyproject's version, which the Dockerfile builds and checks."""
    problems = []
    names = {entry["name"]: entry for entry in kustomize.get("images", [])}
    for where, container in containers(objs, init=True):
        name, _, tag = container["image"].rpartition(":")
        if name not in names:
            problems.append(f"{where}: image {container['image']} is not in the kustomization's images")
        elif tag != VERSION or str(names[name].get("newTag")) != VERSION:
            problems.append(f"{where}: image {container['image']} (kustomize newTag {names[name].get('newTag')}) is not version {VERSION}")
    arg = re.search(r"^ARG SMITHERS_VERSION=(\S+)$", dockerfile(), re.M)
    if not arg or arg.group(1) != VERSION:
        problems.append(f"deploy/Dockerfile: ARG SMITHERS_VERSION is {arg and arg.group(1)}, pyproject.toml says {VERSION}")
    return problems


# -- the tests ------------------------------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_in_the_folder():
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"listed but missing: {listed - on_disk}; present but not listed: {on_disk - listed}"
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects()}
    assert {("Deployment", "smithers-worker"), ("Deployment", "smithers-serve"), ("Deployment", "smithers-supervisor"),
            ("Service", "smithers-serve"), ("ConfigMap", "smithers-config")} <= kinds, kinds
    assert set(generated_secrets()) == {SECRET_NAME}


def test_the_disruption_budget_covers_exactly_the_workers():
    objs = objects()
    budget = next(obj for obj in objs if obj["kind"] == "PodDisruptionBudget")
    selector = budget["spec"]["selector"]["matchLabels"].items()
    selected = [name for name, d in deployments(objs).items() if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert selected == ["smithers-worker"]


def test_the_real_secrets_file_is_git_ignored():
    assert "secrets.env" in (K8S / ".gitignore").read_text(encoding="utf-8").split()
    assert {"SMITHERS_DB", "SMITHERS_API_KEY"} <= set(generated_secrets()[SECRET_NAME])
    assert generated_secrets()[SECRET_NAME]["SMITHERS_DB"].startswith("postgresql://")


ALL_OBJECTS = [(f"{name}:{obj['kind']}/{obj['metadata']['name']}", obj) for name, obj in manifests()] + [
    (f"secretGenerator:Secret/{obj['metadata']['name']}", obj) for obj in secret_objects()]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("where,obj", ALL_OBJECTS, ids=[where for where, _ in ALL_OBJECTS])
def test_every_object_validates_against_the_kubernetes_schema_strictly(where: str, obj: dict[str, Any], version: str):
    # a missing schema raises SchemaNotFoundError: an unknown kind fails here instead of passing unchecked
    kubernetes_validate.validate(obj, version, strict=True)


def test_a_broken_manifest_fails_schema_validation():
    worker = copy.deepcopy(deployments(objects())["smithers-worker"])
    worker["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # misspelt field: strict mode only
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)
    worker = copy.deepcopy(deployments(objects())["smithers-worker"])
    worker["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)


CONTAINERS = list(containers(objects()))


@pytest.mark.parametrize("where,container", CONTAINERS, ids=[where for where, _ in CONTAINERS])
def test_every_container_runs_a_real_smithers_command_with_options_that_parse(where: str, container: dict[str, Any]):
    assert command_problems(where, container) == []


def test_each_command_s_help_lists_the_options_the_manifests_use():
    """The same as a user sees it: `python -m smithers CMD --help` (the real CLI in a subprocess)."""
    used: dict[str, set[str]] = {}
    for _, container in CONTAINERS:
        args = [str(arg) for arg in container["args"]]
        used.setdefault(args[0], set()).update(arg.split("=", 1)[0] for arg in args[1:] if arg.startswith("--"))
    assert {"worker", "serve", "supervise"} == set(used)
    for sub, flags in used.items():
        done = subprocess.run([sys.executable, "-m", "smithers", sub, "--help"], capture_output=True, text=True, timeout=60)
        if sub == "worker" and sub not in CLI.commands:  # type: ignore[attr-defined]
            assert done.returncode != 0, "`smithers worker --help` works, but the command is not registered in-process"
            assert set(flags) <= set(DESIGN_WORKER_OPTIONS)
            continue
        assert done.returncode == 0, done.stderr
        missing = [flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", done.stdout)]
        assert not missing, f"`smithers {sub} --help` does not list {missing}:\n{done.stdout}"


def test_the_worker_gets_its_pod_name_and_outlasts_its_own_grace_period():
    worker = deployments(objects())["smithers-worker"]
    pod = worker["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = [str(arg) for arg in container["args"]]
    assert option_value(args, "--name") == "$(POD_NAME)"
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert worker["spec"]["replicas"] >= 2
    lease = parse_duration(option_value(args, "--lease-timeout") or "30s")
    grace = worker_grace_s(args)
    assert lease is not None and pod["terminationGracePeriodSeconds"] > max(lease, grace)


def worker_grace_s(args: list[str]) -> float:
    """The worker's own SIGTERM grace period, when the real CLI has an option for it (else 0: DESIGN §10.2
    names none, and the lease timeout is the bound)."""
    command = CLI.commands.get("worker")  # type: ignore[attr-defined]
    for param in getattr(command, "params", []):
        flag = next((opt for opt in param.opts if any(word in opt for word in ("grace", "drain", "shutdown"))), None)
        if flag:
            return parse_duration(option_value(args, flag) or param.default) or 0.0
    return 0.0


def test_the_supervisor_is_one_replica_recreated():
    supervisor = deployments(objects())["smithers-supervisor"]
    assert supervisor["spec"]["replicas"] == 1
    assert supervisor["spec"]["strategy"] == {"type": "Recreate"}


def test_every_secret_and_config_map_a_pod_reads_exists():
    assert secret_ref_problems(objects(), generated_secrets()) == []


def test_the_service_selects_the_serve_pods():
    assert service_problems(objects()) == []


def test_serve_listens_beyond_loopback_only_with_a_token_from_the_secret():
    assert serve_token_problems(objects(), generated_secrets()) == []


def test_the_images_match_the_dockerfile_and_the_version():
    assert image_problems(objects(), kustomization()) == []


def test_the_dockerfile_installs_smithers_with_the_extras_and_runs_it_as_entrypoint():
    text = dockerfile()
    install = re.search(r'pip install [^\n]*"/tmp/smithers\[([\w,]+)\]"', text)
    assert install, "deploy/Dockerfile does not pip-install smithers from the copied source"
    extras = set(install.group(1).split(","))
    assert {"postgres", "server"} <= extras
    # `postgres` (psycopg) is added to pyproject by the PostgreSQL backend's branch; every other extra must exist
    assert extras - EXTRAS <= {"postgres"}, f"extras missing from pyproject.toml: {extras - EXTRAS}"
    entrypoint = re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entrypoint and yaml.safe_load(entrypoint[-1])[-1] == "smithers", entrypoint
    for match in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _ = match.group(1).split()
        assert all((ROOT / src).exists() for src in sources), f"deploy/Dockerfile copies a missing path: {match.group(0)}"


# -- the checks catch what they are for ------------------------------------------------------------------------


def test_the_checks_catch_broken_wiring():
    objs = objects()
    secrets = generated_secrets()

    def container_of(objs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
        return deployments(objs)[deployment]["spec"]["template"]["spec"]["containers"][0]

    broken = copy.deepcopy(objs)
    container_of(broken, "smithers-supervisor")["args"] = ["supervise", "--intervall", "10s"]
    assert "No such option: --intervall" in " ".join(command_problems("supervisor", container_of(broken, "smithers-supervisor")))
    container_of(broken, "smithers-supervisor")["args"] = ["supervise", "--max-concurrent", "three"]
    assert command_problems("supervisor", container_of(broken, "smithers-supervisor"))
    container_of(broken, "smithers-supervisor")["args"] = ["supervise", "--interval", "ten seconds"]
    assert "not a duration" in " ".join(command_problems("supervisor", container_of(broken, "smithers-supervisor")))
    container_of(broken, "smithers-supervisor")["args"] = ["superviser"]
    assert command_problems("supervisor", container_of(broken, "smithers-supervisor"))
    container_of(broken, "smithers-worker")["args"] = ["worker", "--name", "$(NODE_NAME)"]
    assert "does not define" in " ".join(command_problems("worker", container_of(broken, "smithers-worker")))
    container_of(broken, "smithers-worker")["args"] = ["worker", "--slots", "4"]
    assert command_problems("worker", container_of(broken, "smithers-worker"))

    broken = copy.deepcopy(objs)
    container_of(broken, "smithers-worker")["env"][1]["valueFrom"]["secretKeyRef"]["key"] = "DATABASE_URL"
    assert secret_ref_problems(broken, secrets)

    broken = copy.deepcopy(objs)
    next(o for o in broken if o["kind"] == "Service")["spec"]["selector"]["app.kubernetes.io/component"] = "worker"
    assert service_problems(broken)
    broken = copy.deepcopy(objs)
    del next(o for o in broken if o["kind"] == "Service")["spec"]["selector"]["app.kubernetes.io/component"]
    assert service_problems(broken)  # now it selects every smithers pod

    broken = copy.deepcopy(objs)
    container_of(broken, "smithers-serve")["env"] = [e for e in container_of(broken, "smithers-serve")["env"]
                                                      if e["name"] != "SMITHERS_API_KEY"]
    assert "refusing to serve on 0.0.0.0 without a token" in " ".join(serve_token_problems(broken, secrets))
    broken = copy.deepcopy(objs)
    container_of(broken, "smithers-serve")["args"] += ["--auth-token", "s3cret"]
    assert serve_token_problems(broken, secrets)

    broken = copy.deepcopy(objs)
    container_of(broken, "smithers-worker")["image"] = "smithers:0.0.9"
    assert image_problems(broken, kustomization())
