"""deploy/kafka/acls.yaml against topics/topics.yaml: every role gets what it needs to do
its job and nothing that lets it impersonate another role (least privilege)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacer_stream.errors import InvalidArgument
from pacer_stream.streams.acls import DANGEROUS, Acl, allowed, load
from pacer_stream.wire import topics

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "acls.yaml"
ROLES = {"worker", "spend-producer", "bid-engine", "operator"}
#: Who may write each input topic (a write by anyone else is an impersonation).
WRITERS = {
    topics.SPEND: {"spend-producer"},
    topics.BUDGETS: {"operator"},
    topics.COMMANDS: {"operator"},
    topics.CAN_SPEND_REQUESTS: {"bid-engine"},
}


@pytest.fixture(scope="module")
def acls() -> list[Acl]:
    return load(ACL_FILE, topic_prefix="", app_id="pacer-stream")


def test_every_role_is_described(acls: list[Acl]) -> None:
    assert {a.role for a in acls} == ROLES
    assert len({a.principal for a in acls}) == len(ROLES)  # one principal per role


def test_the_worker_reads_every_input_and_writes_every_output(acls: list[Acl]) -> None:
    for topic in topics.INPUT_TOPICS:
        assert allowed(acls, "worker", "Read", topic), topic
        assert not allowed(acls, "worker", "Write", topic), topic
    for topic in topics.OUTPUT_TOPICS:
        assert allowed(acls, "worker", "Write", topic), topic
    # faust's internal topics (changelog, leader) live under the app id
    assert allowed(acls, "worker", "Create", "pacer-stream-campaigns-changelog")
    assert allowed(acls, "worker", "Write", "pacer-stream-__assignor-__leader")
    groups = [a for a in acls if a.role == "worker" and a.resource == "group"]
    assert [g.names for g in groups] == [("pacer-stream",)]


def test_inputs_are_written_only_by_their_producers(acls: list[Acl]) -> None:
    for topic, writers in WRITERS.items():
        assert {r for r in ROLES if allowed(acls, r, "Write", topic)} == writers, topic


def test_outputs_are_written_only_by_the_worker(acls: list[Acl]) -> None:
    for topic in topics.OUTPUT_TOPICS:
        assert {r for r in ROLES if allowed(acls, r, "Write", topic)} == {"worker"}, topic


def test_clients_read_what_they_use_and_no_spend(acls: list[Acl]) -> None:
    assert allowed(acls, "bid-engine", "Read", topics.CAN_SPEND_REPLIES)
    assert allowed(acls, "bid-engine", "Read", topics.BREAKERS)
    assert allowed(acls, "operator", "Read", topics.ALERTS)
    assert allowed(acls, "operator", "Read", topics.DLQ)
    assert allowed(acls, "operator", "Create", topics.SPEND)  # pacer-stream topics create
    for role in ("bid-engine", "spend-producer", "operator"):
        assert not allowed(acls, role, "Read", topics.SPEND), role
        assert not allowed(acls, role, "Read", topics.COMMANDS), role
    assert not any(a.role != "worker" and a.resource == "group" for a in acls)


def test_every_topic_of_topics_yaml_is_covered(acls: list[Acl]) -> None:
    named = {n for a in acls if a.resource == "topic" and a.pattern == "literal" for n in a.names}
    assert named == set(topics.ALL_TOPICS)


def test_no_role_gets_destructive_or_cluster_wide_rights(acls: list[Acl]) -> None:
    for a in acls:
        assert not DANGEROUS & set(a.operations), a
        assert a.resource != "cluster", a


def test_prefix_and_app_id_are_substituted() -> None:
    acls = load(ACL_FILE, topic_prefix="staging.", app_id="pacer-staging")
    assert allowed(acls, "worker", "Read", "staging." + topics.SPEND)
    assert not allowed(acls, "worker", "Read", topics.SPEND)
    assert allowed(acls, "worker", "Create", "pacer-staging-campaigns-changelog")
    assert allowed(acls, "operator", "Create", "staging.pacer.x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("roles: {}", "non-empty 'roles'"),
        ("roles: {w: {principal: pacer, why: x, acls: [{resource: topic, names: [a], "
         "operations: [Read]}]}}", "principal"),
        ("roles: {w: {principal: 'User:a', acls: [{resource: topic, names: [a], "
         "operations: [Read]}]}}", "say why"),
        ("roles: {w: {principal: 'User:a', why: x, acls: [{resource: topic, names: [a], "
         "operations: [Fly]}]}}", "do not exist"),
        ("roles: {w: {principal: 'User:a', why: x, acls: [{resource: queue, names: [a], "
         "operations: [Read]}]}}", "resource must be"),
        ("roles: {w: {principal: 'User:a', why: x, acls: [{resource: topic, names: ['*'], "
         "operations: [Read]}]}}", "wildcard"),
        ("roles: {w: {principal: 'User:a', why: x, acls: [{resource: topic, names: ['${X}'], "
         "operations: [Read]}]}}", "placeholder"),
        ("roles: {w: {principal: 'User:a', why: x, acls: [{resource: topic, pattern: match, "
         "names: [a], operations: [Read]}]}}", "pattern must be"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "acls.yaml"
    f.write_text(body)
    with pytest.raises(InvalidArgument, match=message):
        load(f)


def test_rendered_commands_are_kafka_acls_invocations(acls: list[Acl]) -> None:
    for a in acls:
        args = a.kafka_acls_args()
        assert args[:3] == ["--add", "--allow-principal", a.principal]
        assert args[-2:] == ["--resource-pattern-type", a.pattern]
        assert args.count("--operation") == len(a.operations)
