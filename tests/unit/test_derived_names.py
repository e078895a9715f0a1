"""Every name and label value dops derives from an operation fits Kubernetes' limits (issue 11, item 11).

The longest legal operation name is a 253-character DNS-1123 subdomain (with or without dots), in the longest
legal namespace (63 characters). For such operations, table-tested without a cluster:
- the Job name (every attempt) is a DNS-1123 label of at most 63 characters, so it is also a valid label
  value (the Job controller copies it into `batch.kubernetes.io/job-name`);
- the worker pod name the Job controller derives (`<job>-` + 5 random characters) is a valid name;
- Event names about the operation and its Job are valid names of at most 253 characters, distinct for
  distinct objects;
- every label value on the Job and its pod template is a valid label value (at most 63 characters).
"""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest

from dops.domain.jobs import build_job, job_name
from dops.domain.labels import is_valid_label_value
from dops.domain.names import event_name, is_dns1123_label, is_dns1123_subdomain, shortened
from dops.domain.settings import OperatorSettings
from dops.domain.targets import Target
from dops.k8s.client import KubeClient
from dops.k8s.workloads import EventRecorder
from tests.workload_builders import operation

LONGEST_NAMESPACE = "n" * 63
NAMES = [
    pytest.param("a" * 253, id="253 letters"),
    pytest.param(".".join(["b" * 62] * 4) + ".c", id="253 with dots"),
    pytest.param("a" + "-" * 251 + "z", id="253 with dashes"),
    pytest.param("x" * 61, id="61: fits with -1, not with -10"),
    pytest.param("y" * 62 + "." + "z", id="a dot right at the cut"),
    pytest.param("short", id="short"),
]
TARGET = Target(namespace=LONGEST_NAMESPACE, name="t" * 253, image="img")
TOKEN = "0123456789abcdef"  # what EventRecorder appends: secrets.token_hex(8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("attempt", [1, 10, 99999])
def test_job_and_pod_names_fit(name: str, attempt: int) -> None:
    assert is_dns1123_subdomain(name)
    jname = job_name(name, attempt)
    assert is_dns1123_label(jname) and is_valid_label_value(jname), jname
    assert jname.endswith(f"-{attempt}")
    assert is_dns1123_subdomain(f"{jname}-abcde")  # the pod the Job controller creates
    assert job_name(name, attempt) == jname  # deterministic: a second create is AlreadyExists


def test_long_names_that_share_a_prefix_get_distinct_job_names() -> None:
    assert job_name("a" * 200 + "x", 1) != job_name("a" * 200 + "y", 1)


@pytest.mark.parametrize("name", NAMES)
def test_event_names_fit(name: str) -> None:
    for involved in (name, job_name(name, 1)):
        event = event_name(involved, TOKEN)
        assert len(event) <= 253 and is_dns1123_subdomain(event), event
        assert event.endswith(f".{TOKEN}")
    if len(name) + 1 + len(TOKEN) <= 253:
        assert event_name(name, TOKEN) == f"{name}.{TOKEN}"  # kubectl's form when it fits


@pytest.mark.parametrize("name", NAMES)
def test_the_event_recorder_names_events_within_the_limit(name: str) -> None:
    recorder = EventRecorder(cast(KubeClient, None), instance="test")
    op = operation(name=name, namespace=LONGEST_NAMESPACE)
    body = recorder.body(op, "Normal", "Queued", "queued", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert is_dns1123_subdomain(body["metadata"]["name"]), body["metadata"]["name"]
    assert body["involvedObject"]["name"] == name


def test_event_names_of_distinct_long_operations_differ() -> None:
    assert event_name("a" * 252 + "b", TOKEN) != event_name("a" * 252 + "c", TOKEN)


@pytest.mark.parametrize("name", NAMES)
def test_every_label_value_on_the_job_is_valid(name: str) -> None:
    op = operation(name=name, namespace=LONGEST_NAMESPACE)
    job = build_job(op, TARGET, OperatorSettings(), 99999)
    for where, labels in (
        ("Job", job["metadata"]["labels"]),
        ("pod template", job["spec"]["template"]["metadata"]["labels"]),
    ):
        for key, value in labels.items():
            assert is_valid_label_value(value), f"{where} label {key}={value!r}"


def test_shortened_refuses_an_impossible_limit() -> None:
    with pytest.raises(ValueError, match="cannot shorten"):
        shortened("a" * 20, 10, "-123456789")
