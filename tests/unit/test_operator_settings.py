"""OperatorSettings.from_env (the settings contract shared with the Helm chart and `dops dev`).

Aspects covered:
- every documented default when the environment is empty (and for empty values);
- every variable parsed (integers, ports, booleans, namespace lists, URLs, templates);
- bad values raise ConfigurationError naming the full variable and the value;
- run-link templates are checked for unknown placeholders.
"""

from __future__ import annotations

import pytest

from dops.domain.settings import DEFAULT_WORKER_IMAGE, ConfigurationError, OperatorSettings


def test_defaults_match_the_contract() -> None:
    """Settings contract: the default of every variable."""
    s = OperatorSettings.from_env({})
    assert s.watch_namespaces == ()
    assert s.cluster_wide
    assert s.worker_image == DEFAULT_WORKER_IMAGE == "ghcr.io/dops-dev/dops:0.1.0"
    assert s.worker_service_account == "dops-worker"
    assert s.default_max_concurrent == 10
    assert s.global_max_concurrent == 100
    assert s.default_timeout_seconds == 0
    assert s.default_retries == 0
    assert s.run_link_template == ""
    assert s.api_server_url == ""
    assert s.log_archive == "/var/lib/dops/logs"
    assert s.ttl_seconds_after_finished == 0
    assert s.job_ttl_seconds == 600
    assert s.image_pull_grace_seconds == 120
    assert s.allow_import_paths is False
    assert s.reconcile_interval_seconds == 60
    assert s.metrics_port == 8080
    assert s.health_port == 8081
    assert s.watch_stale_seconds == 300


def test_empty_values_mean_defaults() -> None:
    env = {"DOPS_DEFAULT_MAX_CONCURRENT": "", "DOPS_LOG_ARCHIVE": "  ", "DOPS_WATCH_NAMESPACES": ""}
    assert OperatorSettings.from_env(env) == OperatorSettings()


def test_every_variable_is_parsed() -> None:
    env = {
        "DOPS_WATCH_NAMESPACES": "team-a, team-b,team-a",
        "DOPS_WORKER_IMAGE": "registry.example.com/dops:1.2",
        "DOPS_WORKER_SERVICE_ACCOUNT": "runner",
        "DOPS_DEFAULT_MAX_CONCURRENT": "3",
        "DOPS_GLOBAL_MAX_CONCURRENT": "0",
        "DOPS_DEFAULT_TIMEOUT_SECONDS": "3600",
        "DOPS_DEFAULT_RETRIES": "2",
        "DOPS_RUN_LINK_TEMPLATE": "https://grafana/explore?ns={namespace}&pod={pod}",
        "DOPS_API_SERVER_URL": "https://kube.example.com:6443/",
        "DOPS_LOG_ARCHIVE": "s3://bucket/logs",
        "DOPS_TTL_SECONDS_AFTER_FINISHED": "86400",
        "DOPS_JOB_TTL_SECONDS": "60",
        "DOPS_IMAGE_PULL_GRACE_SECONDS": "30",
        "DOPS_ALLOW_IMPORT_PATHS": "true",
        "DOPS_RECONCILE_INTERVAL_SECONDS": "15",
        "DOPS_METRICS_PORT": "0",
        "DOPS_HEALTH_PORT": "9000",
        "DOPS_WATCH_STALE_SECONDS": "120",
    }
    s = OperatorSettings.from_env(env)
    assert s.watch_namespaces == ("team-a", "team-b")
    assert not s.cluster_wide
    assert s.worker_image == "registry.example.com/dops:1.2"
    assert s.worker_service_account == "runner"
    assert (s.default_max_concurrent, s.global_max_concurrent) == (3, 0)
    assert (s.default_timeout_seconds, s.default_retries) == (3600, 2)
    assert s.run_link_template == "https://grafana/explore?ns={namespace}&pod={pod}"
    assert s.api_server_url == "https://kube.example.com:6443"
    assert s.log_archive == "s3://bucket/logs"
    assert (s.ttl_seconds_after_finished, s.job_ttl_seconds, s.image_pull_grace_seconds) == (86400, 60, 30)
    assert s.allow_import_paths is True
    assert (s.reconcile_interval_seconds, s.metrics_port, s.health_port, s.watch_stale_seconds) == (15, 0, 9000, 120)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DOPS_DEFAULT_MAX_CONCURRENT", "x", 'DOPS_DEFAULT_MAX_CONCURRENT must be an integer ≥ 1, got "x"'),
        ("DOPS_DEFAULT_MAX_CONCURRENT", "0", 'DOPS_DEFAULT_MAX_CONCURRENT must be an integer ≥ 1, got "0"'),
        ("DOPS_GLOBAL_MAX_CONCURRENT", "-1", "DOPS_GLOBAL_MAX_CONCURRENT must be an integer ≥ 0"),
        ("DOPS_DEFAULT_RETRIES", "2.5", 'DOPS_DEFAULT_RETRIES must be an integer ≥ 0, got "2.5"'),
        ("DOPS_METRICS_PORT", "70000", "DOPS_METRICS_PORT must be a port number"),
        ("DOPS_HEALTH_PORT", "http", "DOPS_HEALTH_PORT must be a port number"),
        ("DOPS_ALLOW_IMPORT_PATHS", "maybe", 'DOPS_ALLOW_IMPORT_PATHS must be true or false, got "maybe"'),
        ("DOPS_WATCH_NAMESPACES", "Team_A", "DOPS_WATCH_NAMESPACES must be a comma-separated list of namespace names"),
        ("DOPS_API_SERVER_URL", "kube.example.com", "DOPS_API_SERVER_URL must be an http(s) URL"),
        (
            "DOPS_RUN_LINK_TEMPLATE",
            "https://x/{podname}",
            "DOPS_RUN_LINK_TEMPLATE uses unknown placeholders ['podname']",
        ),
        ("DOPS_RUN_LINK_TEMPLATE", "https://x/{pod", "DOPS_RUN_LINK_TEMPLATE is not a valid template"),
        ("DOPS_RECONCILE_INTERVAL_SECONDS", "0", "DOPS_RECONCILE_INTERVAL_SECONDS must be an integer ≥ 1"),
        ("DOPS_WATCH_STALE_SECONDS", "soon", "DOPS_WATCH_STALE_SECONDS must be an integer ≥ 1"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        OperatorSettings.from_env({variable: value})
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_true_and_false_spellings() -> None:
    for text, value in (("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False), ("False", False)):
        assert OperatorSettings.from_env({"DOPS_ALLOW_IMPORT_PATHS": text}).allow_import_paths is value
