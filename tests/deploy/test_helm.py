"""The Helm chart: Helm's lint, Kubernetes' schemas (strict), and what must hold between
the manifests (ports, labels, paths, secrets) for the stack to work once deployed."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
import yamllint.config
import yamllint.linter

from tests.deploy import k8s
from tests.deploy.conftest import (
    CHART,
    K8S_VERSIONS,
    NAMESPACE,
    SCENARIOS,
    SECRET_VALUES,
    TEST_SECRETS,
    deep_merge,
    manifests_of,
    render,
    render_raw,
)

# Custom resources: no bundled schema; checked by hand below.
CRD_KINDS = {("networking.istio.io/v1", "VirtualService"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime")}
GRPC_SERVICES = {  # component -> (listen variable, values key)
    "datagen": ("SYNTHTUNE_DATAGEN_LISTEN", "datagen"),
    "trainer": ("SYNTHTUNE_TRAINER_LISTEN", "trainer"),
    "serving-proxy": ("SYNTHTUNE_SERVING_PROXY_LISTEN", "servingProxy"),
}
SYNTHTUNE_COMPONENTS = {"datagen", "trainer", "serving-proxy", "control-plane", "worker", "migrate"}


def strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "__template__"}


# --- Helm lint and the Kubernetes schemas ---------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_helm_lint_is_clean(name):
    report = helm.lint(str(CHART), SCENARIOS[name], strict=True, kube_version=f"v{K8S_VERSIONS[0]}")
    assert report["errors"] == []
    # 1 = info ("icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_helm_lint_with_the_charts_own_defaults():
    report = helm.lint(str(CHART), None, strict=True, kube_version=f"v{K8S_VERSIONS[0]}")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_strictly(manifests, version):
    custom = set()
    for doc in manifests:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            custom.add(doc["kind"])
            continue
        try:
            validated = kubernetes_validate.validate(strip(doc), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['__template__']}: {doc['kind']}/{doc['metadata']['name']} {path}: {exc.message}")
        assert validated == version.rsplit(".", 1)[0]  # the exact schema version, not an older one


def test_the_strict_validator_catches_a_misspelt_field():
    deployment = strip(k8s.of_kind(manifests_of("default"), "Deployment")[0])
    kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_rendered_yaml_has_no_duplicate_keys_or_trailing_spaces(scenario):
    # A duplicated key (two `env:` in one container) parses fine and silently drops one.
    config = yamllint.config.YamlLintConfig(
        "rules: {key-duplicates: enable, trailing-spaces: enable, document-start: disable}")
    for template, text in render_raw(SCENARIOS[scenario]).items():
        if template.endswith(".yaml") and text.strip():
            problems = [p for p in yamllint.linter.run(text, config) if p.level == "error"]
            assert problems == [], f"{template}: {problems}"


# --- Renders that must fail ---------------------------------------------------------------


@pytest.mark.parametrize("values, message", [
    ({"postgresql": {"enabled": False}}, "databaseUrl"),
    ({"vllm": {"enabled": False}}, "vllm.external.url"),
    ({"secrets": {"grpcToken": "short"}}, "grpcToken"),
    ({"istio": {"virtualService": {"enabled": True}}}, "hosts"),
    ({"trainer": {"launcher": "kubeflow"}, "dataRoot": {"persistence": {"accessModes": ["ReadWriteOnce"]}}},
     "ReadWriteMany"),
    ({"controlPlane": {"limits": {"uploadMaxBytes": "1Gi"}}}, "controlPlane.limits.uploadMaxBytes"),
    ({"controlPlane": {"limits": {"bodyMaxBytes": 512}}}, "controlPlane.limits.bodyMaxBytes"),
    ({"controlPlane": {"throttle": {"trustedProxies": 11}}}, "controlPlane.throttle.trustedProxies"),
    ({"controlPlane": {"throttle": {"user": True}}}, "controlPlane.throttle.user"),
])
def test_bad_values_fail_the_render_with_the_value_named(values, message):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


# --- Security -------------------------------------------------------------------------------


def test_every_container_is_hardened_and_has_resources(scenario, manifests):
    for pod in k8s.pods(manifests):
        # Only the trainer talks to the Kubernetes API, and only to run TrainJobs.
        talks_to_the_api = pod.component == "trainer" and scenario == "kubeflow"
        assert pod.spec.get("automountServiceAccountToken") is talks_to_the_api, pod.name
        pod_ctx = pod.spec.get("securityContext", {})
        for container in pod.containers():
            where = f"{pod.name}/{container['name']}"
            ctx = container.get("securityContext")
            assert ctx, f"{where}: no securityContext"
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where
            assert (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (None, 0), where
            seccomp = ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}
            assert seccomp.get("type") == "RuntimeDefault", where
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind} {resources}"


def test_images_are_pinned(manifests):
    for pod in k8s.pods(manifests):
        for container in pod.containers():
            image = container["image"]
            assert not image.endswith(":latest"), image
            assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image), image
            if pod.component in {"vllm", "postgresql"} and container["name"] in {"vllm", "postgresql"}:
                assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", image), f"third-party {image}: tag and digest"


def test_secret_values_never_reach_plain_env_or_anything_but_the_secret(scenario, manifests):
    for doc in manifests:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(strip(doc))
        for value in SECRET_VALUES:
            assert value not in text, f"{doc['kind']}/{doc['metadata']['name']} carries a secret value"
    secret_like = re.compile(r"TOKEN|SECRET|PASSWORD|DATABASE_URL|API_KEY")
    for pod in k8s.pods(manifests):
        for container in pod.containers():
            for name, entry in k8s.env(container).items():
                if secret_like.search(name):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{pod.name}: {name} is plain env"


def test_secret_refs_name_keys_the_secret_has(scenario, manifests):
    secrets = {s["metadata"]["name"]: s for s in k8s.of_kind(manifests, "Secret")}
    existing = SCENARIOS[scenario].get("secrets", {}).get("existingSecret")
    refs = 0
    for pod in k8s.pods(manifests):
        for container in pod.containers():
            for entry in k8s.env(container).values():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if not ref:
                    continue
                refs += 1
                if ref["name"] in secrets:
                    assert ref["key"] in secrets[ref["name"]]["data"], f"{pod.name}: {ref}"
                else:  # yours: existingSecret, or a Secret a value names (vLLM key, HF token)
                    assert existing == ref["name"] or ref["name"] in {"vllm-api-key", "hf-token"}, ref
    assert refs >= 4


def test_chart_secret_holds_the_given_values_and_generates_the_rest():
    given = _secret_data(manifests_of("all-on"))
    assert given["grpc-token"] == TEST_SECRETS["grpcToken"]
    assert given["django-secret-key"] == TEST_SECRETS["djangoSecretKey"]
    assert given["metrics-token"] == TEST_SECRETS["metricsToken"]
    assert given["database-url"] == (
        f"postgresql://synthtune:{TEST_SECRETS['postgresPassword']}@st-synthtune-postgresql:5432/synthtune")
    generated = _secret_data(render(None))
    assert len(generated["grpc-token"]) >= 16 and len(generated["django-secret-key"]) >= 32
    assert generated["grpc-token"] not in SECRET_VALUES
    # The bundled database's URL carries the password the database is given.
    assert f":{generated['postgres-password']}@" in generated["database-url"]


def _secret_data(manifests: list[dict]) -> dict[str, str]:
    (secret,) = k8s.of_kind(manifests, "Secret")
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_existing_secret_means_the_chart_makes_none():
    assert k8s.of_kind(manifests_of("external"), "Secret") == []


# --- Services, probes and addresses --------------------------------------------------------


def test_grpc_services_use_native_grpc_probes_on_the_port_they_listen_on(manifests):
    for component, (listen_var, _) in GRPC_SERVICES.items():
        pod = k8s.pod(manifests, component)
        container = pod.container(component)
        listen_port = int(k8s.env_value(container, listen_var).rsplit(":", 1)[1])
        grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        assert listen_port == grpc_port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == grpc_port, f"{component} {probe}"


def test_services_select_real_pods_and_target_their_named_ports(manifests):
    pods = k8s.pods(manifests)
    for service in k8s.of_kind(manifests, "Service"):
        selected = [p for p in pods if k8s.selects({"matchLabels": service["spec"]["selector"]}, p.labels)]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} workloads"
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            if isinstance(target, str):
                assert target in selected[0].port_names(), f"{service['metadata']['name']}: {target}"
            else:
                assert target in selected[0].port_numbers()


def test_control_plane_and_worker_reach_each_service_at_its_service_port(manifests):
    services = {s["metadata"]["name"]: s for s in k8s.of_kind(manifests, "Service")}
    for component in ("control-plane", "worker"):
        container = k8s.pod(manifests, component).containers(init=False)[0]
        for variable, target in (("SYNTHTUNE_DATAGEN_ADDR", "datagen"), ("SYNTHTUNE_TRAINER_ADDR", "trainer"),
                                 ("SYNTHTUNE_SERVING_PROXY_ADDR", "serving-proxy")):
            host, port = k8s.env_value(container, variable).rsplit(":", 1)
            service = services[host]
            assert service["spec"]["selector"]["app.kubernetes.io/component"] == target
            assert int(port) in {p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"}


def test_every_synthtune_process_shares_one_data_root_claim(scenario, manifests):
    pvcs = k8s.of_kind(manifests, "PersistentVolumeClaim")
    claims = set()
    for pod in k8s.pods(manifests):
        if pod.component not in SYNTHTUNE_COMPONENTS - {"migrate"}:
            continue
        container = pod.containers(init=False)[0]
        data_root = k8s.env_value(container, "SYNTHTUNE_DATA_ROOT")
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == data_root)
        assert "subPath" not in mount
        assert mount.get("readOnly", False) is (pod.component == "serving-proxy"), pod.name  # the proxy only reads
        claims.add(pod.volume(mount["name"])["persistentVolumeClaim"]["claimName"])
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # read-only root: /tmp on emptyDir
    assert len(claims) == 1
    if scenario == "external":
        assert pvcs == [] and claims == {"synthtune-data"}
    else:
        (pvc,) = pvcs
        assert pvc["metadata"]["name"] in claims and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_migrations_run_as_a_hook_after_install_and_before_upgrade(manifests):
    (job,) = k8s.of_kind(manifests, "Job")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"post-install", "pre-upgrade"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["migrate", "--noinput"]
    assert container["image"] == k8s.pod(manifests, "control-plane").containers()[0]["image"]
    assert "secretKeyRef" in k8s.env(container)["DATABASE_URL"]["valueFrom"]
    # A pre-upgrade Job sees the previous Secret: only keys every release has had.
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert keys <= {"grpc-token", "database-url", "django-secret-key"}


def test_worker_runs_the_control_plane_image_with_the_worker_command(manifests):
    worker = k8s.pod(manifests, "worker")
    control_plane = k8s.pod(manifests, "control-plane")
    assert worker.containers()[0]["image"] == control_plane.containers()[0]["image"]
    assert worker.containers()[0]["args"] == ["python", "-m", "control_plane", "worker"]
    assert worker.workload["spec"]["replicas"] == 1 and worker.workload["spec"]["strategy"]["type"] == "Recreate"


# --- vLLM and the serving proxy: one adapter path, one rank, every replica --------------------


def _proxy(manifests) -> dict:
    return k8s.pod(manifests, "serving-proxy").container("serving-proxy")


def _flag(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} in {args}"
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("scenario_name", ["default", "all-on"])
def test_vllm_mounts_adapters_read_only_where_the_proxy_says_they_are(scenario_name):
    manifests = manifests_of(scenario_name)
    vllm = k8s.pod(manifests, "vllm")
    container = vllm.container("vllm")
    adapter_root = k8s.env_value(_proxy(manifests), "SYNTHTUNE_VLLM_ADAPTER_ROOT")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == adapter_root]
    assert mount["subPath"] == "adapters" and mount["readOnly"] is True
    # ...of the same claim the trainer exports into.
    trainer = k8s.pod(manifests, "trainer")
    assert vllm.volume(mount["name"])["persistentVolumeClaim"] == trainer.volume("data")["persistentVolumeClaim"]
    # The sub-folder exists before the mount, made by the synthtune user.
    (init,) = vllm.spec["initContainers"]
    assert init["command"] == ["mkdir", "-p", "/data/adapters"]
    assert init["securityContext"]["runAsUser"] == trainer.spec["securityContext"]["runAsUser"]


@pytest.mark.parametrize("scenario_name", ["default", "all-on"])
def test_vllm_runs_with_runtime_lora_and_the_proxys_rank(scenario_name):
    manifests = manifests_of(scenario_name)
    container = k8s.pod(manifests, "vllm").container("vllm")
    args = container["args"]
    assert "--enable-lora" in args
    assert _flag(args, "--max-lora-rank") == k8s.env_value(_proxy(manifests), "SYNTHTUNE_VLLM_MAX_LORA_RANK")
    assert k8s.env_value(container, "VLLM_ALLOW_RUNTIME_LORA_UPDATING") == "True"
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert int(_flag(args, "--port")) == container["ports"][0]["containerPort"]


def test_one_vllm_replica_is_a_deployment_behind_its_service():
    manifests = manifests_of("default")
    workload = k8s.pod(manifests, "vllm").workload
    assert workload["kind"] == "Deployment" and workload["spec"]["replicas"] == 1
    assert workload["spec"]["strategy"] == {"type": "Recreate"}  # an upgrade never needs a second GPU
    proxy = _proxy(manifests)
    assert k8s.env_value(proxy, "SYNTHTUNE_VLLM_REPLICAS") == k8s.env_value(proxy, "SYNTHTUNE_VLLM_URL")
    assert not [d for d in manifests if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]


def test_several_vllm_replicas_are_loaded_each_by_its_stable_name():
    manifests = manifests_of("all-on")
    statefulset = k8s.pod(manifests, "vllm").workload
    assert statefulset["kind"] == "StatefulSet"
    replicas = k8s.env_value(_proxy(manifests), "SYNTHTUNE_VLLM_REPLICAS").split(",")
    assert len(replicas) == statefulset["spec"]["replicas"] > 1
    name, headless_name = statefulset["metadata"]["name"], statefulset["spec"]["serviceName"]
    headless = k8s.named(manifests, "Service", headless_name)
    assert headless["spec"]["clusterIP"] == "None"
    port = headless["spec"]["ports"][0]["port"]
    assert [urlsplit(url).netloc for url in replicas] == [
        f"{name}-{i}.{headless_name}.{NAMESPACE}.svc:{port}" for i in range(len(replicas))]
    # The default target is the load-balanced Service.
    default = urlsplit(k8s.env_value(_proxy(manifests), "SYNTHTUNE_VLLM_URL"))
    assert k8s.named(manifests, "Service", default.hostname)["spec"].get("clusterIP") != "None"


def test_external_vllm_is_configured_and_not_deployed():
    manifests = manifests_of("external")
    assert not [p for p in k8s.pods(manifests) if p.component == "vllm"]
    proxy = _proxy(manifests)
    values = SCENARIOS["external"]["vllm"]
    assert k8s.env_value(proxy, "SYNTHTUNE_VLLM_URL") == values["external"]["url"]
    assert k8s.env_value(proxy, "SYNTHTUNE_VLLM_REPLICAS") == ",".join(values["external"]["replicas"])
    assert k8s.env_value(proxy, "SYNTHTUNE_VLLM_ADAPTER_ROOT") == values["adapterRoot"]


# --- The trainer ------------------------------------------------------------------------------


def test_gpu_trainer_requests_the_gpu_and_tolerates_its_taint():
    manifests = manifests_of("all-on")
    trainer = k8s.pod(manifests, "trainer")
    container = trainer.container("trainer")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "synthtune-trainer-cuda" in container["image"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in trainer.spec["tolerations"]
    assert trainer.spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert trainer.workload["spec"]["strategy"]["type"] == "Recreate"
    assert trainer.workload["spec"]["replicas"] == 1
    assert k8s.env_value(container, "OMP_NUM_THREADS") == "6"
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert trainer.volume(shm["name"])["emptyDir"]["medium"] == "Memory"


def test_cpu_trainer_uses_the_cpu_image_and_no_gpu():
    container = k8s.pod(manifests_of("external"), "trainer").container("trainer")
    assert "synthtune-trainer-cpu" in container["image"]
    assert not any("gpu" in key for key in container["resources"]["limits"])
    # Threads follow the CPU limit (downward API) unless set.
    assert k8s.env(container)["OMP_NUM_THREADS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"


def test_trainer_checkpoint_and_launcher_values_reach_its_settings():
    container = k8s.pod(manifests_of("external"), "trainer").container("trainer")
    assert [k8s.env_value(container, f"SYNTHTUNE_TRAINER_{name}")
            for name in ("CHECKPOINT_STEPS", "CHECKPOINT_KEEP", "MAX_AUTO_RESUMES", "FAILED_CHECKPOINTS_HOURS",
                         "LAUNCHER")] == ["50", "2", "3", "72", "local"]


CLUSTER_PRIVATE = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


def _outbound_policies(manifests) -> dict:
    """component -> the OutboundPolicy its pod's env makes (parsed by synthtune.outbound itself)."""
    from synthtune.outbound import OutboundPolicy

    policies = {}
    for component in ("datagen", "serving-proxy"):
        container = k8s.pod(manifests, component).container(component)
        policies[component] = OutboundPolicy.from_settings(
            allow=k8s.env_value(container, "SYNTHTUNE_OUTBOUND_ALLOW"),
            deny=k8s.env_value(container, "SYNTHTUNE_OUTBOUND_DENY"))
    return policies


@pytest.mark.parametrize("scenario_name", ["default", "all-on"])
def test_the_chart_denies_teacher_and_judge_urls_in_the_cluster_private_ranges_by_default(scenario_name):
    from synthtune.errors import InvalidArgument

    manifests = manifests_of(scenario_name)
    for component, policy in _outbound_policies(manifests).items():
        env = k8s.env(k8s.pod(manifests, component).container(component))
        assert env["SYNTHTUNE_OUTBOUND_DENY"]["value"] == CLUSTER_PRIVATE and env["SYNTHTUNE_OUTBOUND_ALLOW"]["value"] == ""
        for url in ("http://10.96.0.10:8000/v1", "http://172.20.1.1/v1", "http://192.168.1.5/v1", "http://[fd12::5]/v1",
                    "http://169.254.169.254/latest", "http://[fd00:ec2::254]/"):  # the services' own defaults stay
            with pytest.raises(InvalidArgument):
                policy.check_url(url, field="base_url")
        policy.check_url("http://203.0.113.7/v1", field="base_url")  # an outside endpoint passes
    # vLLM is the proxy's configured target, not a request's URL: it is never checked by the policy
    # (serving_proxy_svc.proxy exempts its known targets), so the deny list cannot cut the proxy off.
    assert "SYNTHTUNE_OUTBOUND_DENY" not in k8s.env(k8s.pod(manifests, "vllm").container("vllm"))


def test_outbound_values_replace_the_charts_deny_list_and_set_an_allow_list():
    from synthtune.errors import InvalidArgument

    manifests = render({"outbound": {"deny": [], "allow": ["10.42.0.0/16", ".openai.com"]}})
    for policy in _outbound_policies(manifests).values():
        policy.check_url("http://10.42.3.4:8000/v1", field="base_url")  # an in-cluster teacher, now allowed
        for url in ("http://10.43.0.1/v1", "http://169.254.169.254/"):  # not in allow; always denied
            with pytest.raises(InvalidArgument):
                policy.check_url(url, field="base_url")
    container = k8s.pod(render({"outbound": {"deny": "100.64.0.0/10"}}), "datagen").container("datagen")
    assert k8s.env_value(container, "SYNTHTUNE_OUTBOUND_DENY") == "100.64.0.0/10"  # a comma string works too


@pytest.mark.parametrize("scenario_name", ["default", "all-on"])
def test_the_control_plane_sends_vllm_the_proxys_key_and_has_the_autoload_setting(scenario_name):
    manifests = manifests_of(scenario_name)
    web = k8s.env(k8s.pod(manifests, "control-plane").container("control-plane"))
    proxy = k8s.env(_proxy(manifests))
    assert web["SYNTHTUNE_OPENAI_AUTOLOAD"]["value"] == "true"
    if scenario_name == "default":  # no key configured: neither has one
        assert "SYNTHTUNE_VLLM_TOKEN" not in web and "SYNTHTUNE_VLLM_TOKEN" not in proxy
        return
    ref = web["SYNTHTUNE_VLLM_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == proxy["SYNTHTUNE_VLLM_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "vllm-api-key", "key": "api-key"}
    off = render(deep_merge(SCENARIOS[scenario_name], {"controlPlane": {"openaiAutoload": False}}))
    assert k8s.env_value(k8s.pod(off, "control-plane").container("control-plane"), "SYNTHTUNE_OPENAI_AUTOLOAD") == "false"


def test_the_control_plane_runs_the_configured_gunicorn_workers_and_threads():
    """Workers and threads reach gunicorn_conf through the env; the args must not override them."""
    container = k8s.pod(manifests_of("default"), "control-plane").container("control-plane")
    assert k8s.env_value(container, "SYNTHTUNE_WEB_WORKERS") == "2"
    assert k8s.env_value(container, "SYNTHTUNE_WEB_THREADS") == "100"
    assert not {"--workers", "-w", "--threads", "--worker-class", "-k", "--timeout", "-t"} & set(container["args"])
    sized = render(deep_merge(SCENARIOS["default"], {"controlPlane": {"workers": 3, "threads": 40}}))
    container = k8s.pod(sized, "control-plane").container("control-plane")
    assert k8s.env_value(container, "SYNTHTUNE_WEB_WORKERS") == "3"
    assert k8s.env_value(container, "SYNTHTUNE_WEB_THREADS") == "40"


THROTTLE_AND_LIMITS = {  # variable -> the app's own setting (control_plane.config)
    "SYNTHTUNE_THROTTLE_USER": "throttle_user",
    "SYNTHTUNE_THROTTLE_ANON": "throttle_anon",
    "SYNTHTUNE_TRUSTED_PROXIES": "trusted_proxies",
    "SYNTHTUNE_UPLOAD_MAX_BYTES": "upload_max_bytes",
    "SYNTHTUNE_BODY_MAX_BYTES": "body_max_bytes",
}


def test_the_control_plane_gets_the_throttle_and_size_limits_with_the_apps_defaults():
    from control_plane.config import ControlPlaneConfig

    container = k8s.pod(manifests_of("default"), "control-plane").container("control-plane")
    fields = ControlPlaneConfig.model_fields
    defaults = {name: str(fields[field].default) for name, field in THROTTLE_AND_LIMITS.items()}
    assert {name: k8s.env_value(container, name) for name in THROTTLE_AND_LIMITS} == defaults
    # Only the web process answers HTTP: the worker keeps the app's defaults.
    worker = k8s.env(k8s.pod(manifests_of("default"), "worker").container("worker"))
    assert not set(THROTTLE_AND_LIMITS) & set(worker)


def test_throttle_and_limit_values_reach_the_control_plane_and_extra_env_still_wins():
    values = deep_merge(SCENARIOS["default"], {"controlPlane": {
        "throttle": {"user": "100/s", "anon": False, "trustedProxies": 1},  # bare `off` in YAML is False
        "limits": {"uploadMaxBytes": 1 << 30, "bodyMaxBytes": 1 << 20},
        "extraEnv": [{"name": "SYNTHTUNE_THROTTLE_USER", "value": "5/min"}],
    }})
    container = k8s.pod(render(values), "control-plane").container("control-plane")
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names))  # one entry per variable: extraEnv's replaces the chart's
    assert {name: k8s.env_value(container, name) for name in THROTTLE_AND_LIMITS} == {
        "SYNTHTUNE_THROTTLE_USER": "5/min",
        "SYNTHTUNE_THROTTLE_ANON": "off",
        "SYNTHTUNE_TRUSTED_PROXIES": "1",
        "SYNTHTUNE_UPLOAD_MAX_BYTES": "1073741824",  # not 1.073741824e+09
        "SYNTHTUNE_BODY_MAX_BYTES": "1048576",
    }


# --- NetworkPolicy -------------------------------------------------------------------------------


def _peers(rule: dict) -> list[dict]:
    return rule.get("from", [])


def test_network_policies_select_real_pods_and_only_allowed_peers(scenario, manifests):
    policies = k8s.of_kind(manifests, "NetworkPolicy")
    if scenario == "external":
        assert policies == []
        return
    pods = k8s.pods(manifests)
    by_component = {}
    for policy in policies:
        targets = [p for p in pods if k8s.selects(policy["spec"]["podSelector"], p.labels)]
        assert len(targets) == 1, f"{policy['metadata']['name']} selects {len(targets)} workloads"
        target = targets[0]
        by_component[target.component] = policy
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                assert port["port"] in target.port_names(), f"{policy['metadata']['name']}: {port}"
            for peer in _peers(rule):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(k8s.selects(peer["podSelector"], p.labels) for p in pods), peer

    def allowed(component: str, port: str) -> tuple[set[str], bool]:
        """Components allowed in on `port`, and whether anyone may come in."""
        components, open_ = set(), False
        for rule in by_component[component]["spec"].get("ingress", []):
            if port not in {p["port"] for p in rule.get("ports", [])}:
                continue
            if not _peers(rule):
                open_ = True
            for peer in _peers(rule):
                if "podSelector" in peer:
                    components |= {p.component for p in pods if k8s.selects(peer["podSelector"], p.labels)}
                else:
                    open_ = open_ or not peer.get("namespaceSelector")
        return components, open_

    for component in GRPC_SERVICES:
        assert allowed(component, "grpc") == ({"control-plane", "worker"}, False), component
    # The control plane relays /v1/ inference to vLLM itself.
    assert allowed("vllm", "http") == ({"serving-proxy", "control-plane"}, False)
    if "postgresql" in by_component:
        assert allowed("postgresql", "postgresql") == ({"control-plane", "worker", "migrate"}, False)
    # Every pod of the release is covered by some policy.
    assert {p.component for p in pods} - {"migrate"} <= set(by_component)


# --- Metrics, Istio -------------------------------------------------------------------------------


def test_metrics_ports_annotations_and_service_monitor(scenario, manifests):
    enabled = scenario != "external"
    for component in ("datagen", "trainer", "serving-proxy", "worker"):
        pod = k8s.pod(manifests, component)
        container = pod.containers(init=False)[0]
        port = k8s.env_value(container, "SYNTHTUNE_METRICS_PORT")
        if not enabled:
            assert port == "0" and "metrics" not in pod.port_names()
            continue
        assert int(port) in pod.port_numbers() and "metrics" in pod.port_names()
        annotations = pod.workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == port and annotations["prometheus.io/path"] == "/metrics"
    monitors = k8s.of_kind(manifests, "ServiceMonitor")
    if scenario != "all-on":
        assert monitors == []
        return
    (monitor,) = monitors
    services = [s for s in k8s.of_kind(manifests, "Service")
                if k8s.selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
    scraped = {s["spec"]["selector"]["app.kubernetes.io/component"] for s in services}
    assert scraped == {"datagen", "trainer", "serving-proxy", "worker", "control-plane", "vllm"}
    assert len(services) == len(scraped)  # not vLLM twice through its headless Service
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    for service in services:
        assert endpoint_ports & {p["name"] for p in service["spec"]["ports"]}, service["metadata"]["name"]
    # With controlPlaneAuth the control plane wants the token the monitor sends.
    http = next(e for e in monitor["spec"]["endpoints"] if e["port"] == "http")
    ref = http["authorization"]["credentials"]
    control_plane = k8s.pod(manifests, "control-plane").container("control-plane")
    assert k8s.env(control_plane)["SYNTHTUNE_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == ref


def test_istio_virtual_service_routes_to_the_control_plane():
    manifests = manifests_of("all-on")
    (vs,) = k8s.of_kind(manifests, "VirtualService")
    assert vs["spec"]["hosts"] == ["synthtune.example.com"]
    assert vs["spec"]["gateways"] == ["istio-ingress/public-gateway"]
    (route,) = vs["spec"]["http"]
    destination = route["route"][0]["destination"]
    service = k8s.named(manifests, "Service", destination["host"].split(".")[0])
    assert destination["host"] == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "control-plane"
    assert destination["port"]["number"] in {p["port"] for p in service["spec"]["ports"]}
    assert route["timeout"] == "0s"  # SSE streams outlive any fixed timeout
    # Django answers the Istio host.
    control_plane = k8s.pod(manifests, "control-plane").container("control-plane")
    assert "synthtune.example.com" in k8s.env_value(control_plane, "DJANGO_ALLOWED_HOSTS").split(",")
    assert k8s.of_kind(manifests_of("default"), "VirtualService") == []


def test_values_file_documents_every_top_level_section():
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    lines = text.splitlines()
    for key in values:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        # A comment right above, or the key belongs to a commented group.
        above = lines[max(0, index - 3):index]
        assert any(line.lstrip().startswith("#") for line in above) or key in {
            "imagePullSecrets", "fullnameOverride", "nameOverride", "serviceAccount", "containerSecurityContext",
        }, f"values.yaml: {key} has no comment"


def test_all_on_values_switch_on_every_optional_part():
    merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), SCENARIOS["all-on"])
    assert merged["metrics"]["serviceMonitor"]["enabled"] and merged["metrics"]["controlPlaneAuth"]
    assert merged["istio"]["virtualService"]["enabled"] and merged["networkPolicy"]["enabled"]
    assert merged["vllm"]["enabled"] and merged["vllm"]["replicas"] > 1 and merged["trainer"]["gpu"]["enabled"]
    kinds = {doc["kind"] for doc in manifests_of("all-on")}
    assert {"ServiceMonitor", "VirtualService", "NetworkPolicy", "StatefulSet", "Job", "Secret",
            "PersistentVolumeClaim", "ServiceAccount"} <= kinds
