"""SASL/SCRAM-SHA-512 with ACLs, end to end, on a private broker.

``scripts/services.sh`` starts a broker whose only client listener demands SCRAM
credentials (users created by Kafka's storage tool) and whose authorizer denies what no
ACL allows; ``deploy/kafka/acls.yaml`` is rendered for this run and applied with Kafka's
own ``kafka-acls`` tool. Then the operator creates the topics and sets a budget, the
worker runs under its user, the ad platform reports spend and a bid engine asks
can-spend -- each with its own credentials. Without credentials, or with a wrong
password, nobody gets in; with the wrong role's credentials a write is refused.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError

from pacer_stream.client.kafka import PacerClient
from pacer_stream.core.types import ChannelType
from pacer_stream.settings import Settings
from pacer_stream.streams.acls import load
from pacer_stream.streams.admin import create_topics, kafka_options
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import CanSpendRequest

from .conftest import StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACL_FILE = REPO / "deploy" / "kafka" / "acls.yaml"
UNIT = 1_000_000
USERS = ("pacer-worker", "pacer-spend-producer", "pacer-bidder", "pacer-operator")


def _sasl(user: str | None, password: str | None) -> dict[str, Any]:
    s = Settings(
        kafka_bootstrap_servers="unused:1",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username=user,
        kafka_sasl_password=password,
    )
    opts = kafka_options(s)
    opts.pop("bootstrap_servers")
    return opts


async def test_scram_users_and_role_acls(private_kafka: Any, tmp_path: Path) -> None:
    pw = {u: secrets.token_urlsafe(12) for u in ("broker", *USERS)}
    broker = private_kafka("sasl", scram_users=pw)
    run = StreamRun(tmp_path, bootstrap=broker.bootstrap)
    for acl in load(ACL_FILE, topic_prefix=run.prefix, app_id=run.app_id):
        broker.kafka_acls(acl.kafka_acls_args())

    def client(user: str | None, password: str | None = None) -> PacerClient:
        security = {} if user is None else _sasl(user, password or pw[user])
        return PacerClient(
            broker.bootstrap,
            topic_prefix=run.prefix,
            clock=run.now,
            request_timeout_ms=5000,
            **security,
        )

    # Nobody gets in without credentials or with a wrong password.
    for outsider in (client(None), client("pacer-operator", "wrong-password")):
        with pytest.raises(KafkaConnectionError):
            await outsider.start()
        await outsider.close()

    # The operator creates the topics under its own user (Create on the prefix).
    operator_settings = run.settings().model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": "pacer-operator",
            "kafka_sasl_password": pw["pacer-operator"],
        }
    )
    outcomes = await create_topics(operator_settings)
    assert {o.action for o in outcomes} == {"created"}

    run.extra_env.update(
        {
            "PACER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "PACER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PACER_KAFKA_SASL_USERNAME": "pacer-worker",
            "PACER_KAFKA_SASL_PASSWORD": pw["pacer-worker"],
        }
    )
    w = WorkerProcess(run, "sasl-worker")
    operator = client("pacer-operator")
    producer = client("pacer-spend-producer")
    bidder = client("pacer-bidder")
    try:
        w.start()
        await w.wait_ready(timeout=90)
        for c in (operator, producer, bidder):
            await c.start()
        cid = f"sasl-{uuid.uuid4().hex[:8]}"
        await _budget_and_spend(w, operator, producer, cid, 3 * UNIT, "e1")
        reply = await bidder.can_spend(cid, "display", UNIT, timeout_s=30)
        assert reply.allowed and reply.request_id

        # Each role is confined to its own topics: a bid engine cannot set budgets, the
        # spend producer cannot send commands, the operator cannot forge spend.
        budget = _budget_payload(run, cid)
        for who, topic, payload in (
            (bidder, topics.BUDGETS, budget),
            (producer, topics.COMMANDS, b"{}"),
            (operator, topics.SPEND, b"{}"),
        ):
            with pytest.raises(KafkaError, match="TopicAuthorizationFailed"):
                await who.send(run.topic(topic), cid.encode(), payload)
        # A worker with a wrong password is refused by the broker: it logs the
        # authentication failure and never consumes (the spend stays as it was).
        rogue_run = StreamRun(tmp_path / "rogue", bootstrap=broker.bootstrap)
        rogue_run.run_id, rogue_run.offset_s = run.run_id, run.offset_s
        rogue_run.extra_env.update({**run.extra_env, "PACER_KAFKA_SASL_PASSWORD": "wrong"})
        (tmp_path / "rogue").mkdir()
        rogue = WorkerProcess(rogue_run, "rogue-worker")
        rogue.start()
        await poll(
            lambda: "Authentication failed" in rogue.log_path.read_text(errors="replace"),
            what="the broker refusing the worker's credentials",
        )
        assert rogue.get("/readyz")[0] != 200
        rogue.stop(timeout=20)
        ch = w.channel(cid, "display")
        assert ch is not None and ch["spent_micros"] == 3 * UNIT
    finally:
        for c in (operator, producer, bidder):
            await c.close()
        w.stop(timeout=20)


async def _budget_and_spend(
    worker: WorkerProcess,
    operator: PacerClient,
    producer: PacerClient,
    cid: str,
    amount: int,
    event_id: str,
) -> None:
    """The operator sets a budget, the ad platform reports one spend event; both are
    applied by ``worker``."""
    await operator.set_budget(cid, {"display": 500 * UNIT}, strategy="even_distribution")
    await poll(lambda: worker.status(cid), what="budget applied by the worker")
    await producer.publish_spend(cid, "display", amount, event_id=event_id)
    await poll(
        lambda: (worker.channel(cid, "display") or {}).get("spent_micros") == amount,
        what="spend applied",
    )


def _budget_payload(run: StreamRun, cid: str) -> bytes:
    from pacer_stream.core.types import ChannelType, PacingStrategy
    from pacer_stream.wire.records import BudgetRecord, ChannelBudget

    record = BudgetRecord(
        campaign_id=cid,
        timezone="UTC",
        strategy=PacingStrategy.EVEN_DISTRIBUTION,
        channels={ChannelType.DISPLAY: ChannelBudget(10_000 * UNIT)},
        updated_at=run.now(),
    )
    return records.encode(record)


async def test_a_refused_output_stops_the_worker_and_the_restart_replays_it(
    private_kafka: Any, tmp_path: Path
) -> None:
    """A write the broker refuses (the DLQ topic, then the table's changelog, denied to
    the worker by an ACL an operator got wrong) stops the worker with a non-zero exit
    instead of skipping the batch: nothing of it is committed, so once the ACL is fixed
    the restarted worker dead-letters the bad record and applies the spend, each exactly
    once. A request naming a reply topic the worker may not write to does not stop it."""
    pw = {u: secrets.token_urlsafe(12) for u in ("broker", *USERS)}
    broker = private_kafka("sasl", scram_users=pw)
    run = StreamRun(tmp_path, bootstrap=broker.bootstrap)
    for acl in load(ACL_FILE, topic_prefix=run.prefix, app_id=run.app_id):
        broker.kafka_acls(acl.kafka_acls_args())
    deny = [
        *("--deny-principal", "User:pacer-worker"),
        *("--operation", "Write"),
        *("--topic", run.topic(topics.DLQ)),
    ]
    broker.kafka_acls(["--add", *deny])
    operator_settings = run.settings().model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": "pacer-operator",
            "kafka_sasl_password": pw["pacer-operator"],
        }
    )
    await create_topics(operator_settings)
    run.extra_env.update(
        {
            "PACER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "PACER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PACER_KAFKA_SASL_USERNAME": "pacer-worker",
            "PACER_KAFKA_SASL_PASSWORD": pw["pacer-worker"],
        }
    )

    def client(user: str) -> PacerClient:
        return PacerClient(
            broker.bootstrap, topic_prefix=run.prefix, clock=run.now, **_sasl(user, pw[user])
        )

    operator, producer = client("pacer-operator"), client("pacer-spend-producer")
    bidder = client("pacer-bidder")
    dlq = AIOKafkaConsumer(
        run.topic(topics.DLQ),
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        **_sasl("pacer-operator", pw["pacer-operator"]),
    )
    first = WorkerProcess(run, "refused-worker")
    second = WorkerProcess(run, "fixed-worker")
    third = WorkerProcess(run, "third-worker")
    try:
        for c in (operator, producer):
            await c.start()
        first.start()
        await first.wait_ready(timeout=90)
        cid = f"refused-{uuid.uuid4().hex[:8]}"
        await _budget_and_spend(first, operator, producer, cid, 2 * UNIT, "before")
        # A malformed record (its DLQ entry is refused), then spend behind it.
        await producer.send(run.topic(topics.SPEND), cid.encode(), b"{not json")
        await producer.publish_spend(cid, "display", 3 * UNIT, event_id="behind")
        assert first.proc is not None
        await poll(lambda: first.proc.poll() is not None, what="the worker to stop")
        assert first.proc.returncode != 0, first.log_tail()
        assert "TopicAuthorizationFailed" in first.log_path.read_text(errors="replace")

        broker.kafka_acls(["--remove", "--force", *deny])  # the operator fixes the ACL
        second.start()
        await second.wait_ready(timeout=90)
        await poll(
            lambda: (second.channel(cid, "display") or {}).get("spent_micros") == 5 * UNIT,
            what="the spend behind the refused record applied after the restart",
        )
        await dlq.start()
        entries: list[Any] = []

        async def dead_letters() -> bool:
            fetched = await dlq.getmany(timeout_ms=500)
            entries.extend(m for batch in fetched.values() for m in batch)
            return bool(entries)

        await poll(dead_letters, what="the dead letter written after the restart")
        await dead_letters()  # nothing more arrives: one entry, not one per attempt
        assert [records.decode(topics.DLQ, e.value).error_code for e in entries] == ["invalid_json"]
        ch = second.channel(cid, "display")
        assert ch is not None and ch["spent_micros"] == 5 * UNIT  # each spend once

        # A request naming a reply topic the worker may not write to (no ACL; the same
        # path as a topic that does not exist): the reply is given up off the agents'
        # path, the worker stays up and answers the next bid engine at once.
        await bidder.start()
        request = CanSpendRequest(
            request_id="nowhere-1",
            campaign_id=cid,
            channel=ChannelType.DISPLAY,
            amount_micros=UNIT,
            requested_at=run.now(),
            deadline_ms=30_000,
            reply_to=run.prefix + "pacer.can-spend.replies.nowhere",
        )
        await bidder.send(
            run.topic(topics.CAN_SPEND_REQUESTS), cid.encode(), records.encode(request)
        )
        reply = await bidder.can_spend(cid, "display", UNIT, timeout_s=30)
        assert reply.allowed
        await poll(
            lambda: "pacer_replies_undeliverable_total 1.0" in str(second.get("/metrics")[1]),
            what="the undeliverable reply counted",
        )
        assert second.proc is not None and second.proc.poll() is None

        # The campaign's own changelog write refused: the worker stops at once (no
        # further input needed), nothing committed; the restart applies the spend once.
        deny_state = [*deny[:4], "--topic", f"{run.app_id}-campaigns-changelog"]
        broker.kafka_acls(["--add", *deny_state])
        await producer.publish_spend(cid, "display", 4 * UNIT, event_id="refused-write")
        await poll(lambda: second.proc.poll() is not None, what="the worker to stop")
        assert second.proc.returncode != 0, second.log_tail()
        broker.kafka_acls(["--remove", "--force", *deny_state])
        third.start()
        await third.wait_ready(timeout=90)
        await poll(
            lambda: (third.channel(cid, "display") or {}).get("spent_micros") == 9 * UNIT,
            what="the spend whose write was refused applied after the restart",
        )
    finally:
        for c in (operator, producer, bidder):
            await c.close()
        await dlq.stop()
        for w in (first, second, third):
            w.stop(timeout=20)
