"""Kafka ACLs per role (``deploy/kafka/acls.yaml``): load, check, render for kafka-acls.sh.

Why a file and a renderer instead of prose: the permissions each role needs change with
the topics, and a list in a document drifts. The YAML is the one description; this
module validates it (known resource types, pattern types and operations, no wildcards),
substitutes the deployment's topic prefix and app id, and prints Kafka's own
``kafka-acls.sh --add`` commands, so what the tests apply to a real broker is exactly
what an operator applies::

    python -m pacer_stream.streams.acls deploy/kafka/acls.yaml --app-id pacer-stream \\
        --bootstrap-server broker:9093 --command-config admin.properties
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

from pacer_stream.errors import InvalidArgument

#: Operations Kafka accepts per resource type (kafka-acls.sh --operation).
OPERATIONS: dict[str, frozenset[str]] = {
    "topic": frozenset(
        {
            "Read",
            "Write",
            "Create",
            "Delete",
            "Alter",
            "Describe",
            "DescribeConfigs",
            "AlterConfigs",
        }
    ),
    "group": frozenset({"Read", "Describe", "Delete"}),
    "cluster": frozenset(
        {
            "Create",
            "ClusterAction",
            "Describe",
            "DescribeConfigs",
            "Alter",
            "AlterConfigs",
            "IdempotentWrite",
        }
    ),
}
PATTERNS = frozenset({"literal", "prefixed"})
#: Operations that would let a role reconfigure or destroy what others depend on.
DANGEROUS = frozenset({"All", "Alter", "AlterConfigs", "Delete", "ClusterAction"})


@dataclass(frozen=True)
class Acl:
    """One ``kafka-acls.sh --add`` invocation: a principal, operations, resources."""

    role: str
    principal: str
    resource: str
    pattern: str
    names: tuple[str, ...]
    operations: tuple[str, ...]

    def kafka_acls_args(self) -> list[str]:
        """Arguments of ``kafka-acls.sh`` (after the connection options)."""
        args = ["--add", "--allow-principal", self.principal]
        for op in self.operations:
            args += ["--operation", op]
        if self.resource == "cluster":
            args.append("--cluster")
        else:
            for name in self.names:
                args += [f"--{self.resource}", name]
        args += ["--resource-pattern-type", self.pattern]
        return args


def load(path: str | Path, *, topic_prefix: str = "", app_id: str = "pacer-stream") -> list[Acl]:
    """Read and validate the file; raises ``InvalidArgument`` naming the bad entry."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    roles = raw.get("roles") if isinstance(raw, dict) else None
    if not isinstance(roles, dict) or not roles:
        raise InvalidArgument(f"{path}: expected a non-empty 'roles' mapping")
    out: list[Acl] = []
    for role, body in roles.items():
        if not isinstance(body, dict):
            raise InvalidArgument(f"role {role!r}: expected a mapping")
        principal = body.get("principal")
        if not isinstance(principal, str) or not principal.startswith("User:"):
            raise InvalidArgument(f"role {role!r}: principal must be 'User:<name>'")
        if not isinstance(body.get("why"), str) or not body["why"].strip():
            raise InvalidArgument(f"role {role!r}: say why it needs these permissions")
        entries = body.get("acls")
        if not isinstance(entries, list) or not entries:
            raise InvalidArgument(f"role {role!r}: expected a non-empty 'acls' list")
        for i, entry in enumerate(entries):
            out.append(_entry(role, principal, i, entry, topic_prefix, app_id))
    return out


def _entry(role: str, principal: str, i: int, entry: Any, topic_prefix: str, app_id: str) -> Acl:
    where = f"role {role!r} acl #{i}"
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where}: expected a mapping")
    unknown = set(entry) - {"resource", "pattern", "names", "operations"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    resource = entry.get("resource")
    if resource not in OPERATIONS:
        raise InvalidArgument(f"{where}: resource must be one of {sorted(OPERATIONS)}")
    pattern = entry.get("pattern", "literal")
    if pattern not in PATTERNS:
        raise InvalidArgument(f"{where}: pattern must be one of {sorted(PATTERNS)}")
    ops = entry.get("operations")
    if not isinstance(ops, list) or not ops or len(set(ops)) != len(ops):
        raise InvalidArgument(f"{where}: operations must be a non-empty list without repeats")
    bad = [op for op in ops if op not in OPERATIONS[resource]]
    if bad:
        raise InvalidArgument(f"{where}: operations {bad} do not exist for a {resource}")
    names = entry.get("names", [])
    if resource != "cluster" and (not isinstance(names, list) or not names):
        raise InvalidArgument(f"{where}: names must be a non-empty list")
    rendered = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidArgument(f"{where}: names must be strings")
        try:
            value = Template(name).substitute(TOPIC_PREFIX=topic_prefix, APP_ID=app_id)
        except (KeyError, ValueError) as exc:
            raise InvalidArgument(f"{where}: bad placeholder in {name!r}: {exc}") from None
        if not value or "*" in value:
            raise InvalidArgument(f"{where}: wildcard or empty name {name!r}")
        rendered.append(value)
    return Acl(role, principal, resource, pattern, tuple(rendered), tuple(ops))


def allowed(acls: Sequence[Acl], role: str, operation: str, topic: str) -> bool:
    """Whether ``role`` may perform ``operation`` on ``topic`` under these ACLs (as
    Kafka's authorizer decides it; Read/Write/Delete/Alter imply Describe)."""
    implied = {operation}
    if operation == "Describe":
        implied |= {"Read", "Write", "Delete", "Alter"}
    for acl in acls:
        if acl.role != role or acl.resource != "topic" or not implied & set(acl.operations):
            continue
        for name in acl.names:
            if (acl.pattern == "literal" and topic == name) or (
                acl.pattern == "prefixed" and topic.startswith(name)
            ):
                return True
    return False


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the ACL file (deploy/kafka/acls.yaml)")
    parser.add_argument("--topic-prefix", default="", help="PACER_TOPIC_PREFIX")
    parser.add_argument("--app-id", default="pacer-stream", help="PACER_APP_ID")
    parser.add_argument("--bootstrap-server", default="BOOTSTRAP")
    parser.add_argument("--command-config", default="admin.properties")
    args = parser.parse_args(argv)
    for acl in load(args.file, topic_prefix=args.topic_prefix, app_id=args.app_id):
        cmd = [
            "kafka-acls.sh",
            "--bootstrap-server",
            args.bootstrap_server,
            "--command-config",
            args.command_config,
            *acl.kafka_acls_args(),
        ]
        print(shlex.join(cmd))


if __name__ == "__main__":
    main()
