"""The shared store: incidents, journals, the compensation ledger and releases in one DynamoDB
table.

``--store dynamodb://TABLE``. One table, string keys ``pk`` / ``sk``:

=======================  ===================  ==============================================
pk                       sk                   what
=======================  ===================  ==============================================
``INC#<id>``             ``META``             the incident (+ ``seq``: journal counter)
``INC#<id>``             ``J#<seq>``          one journal entry (JSON in ``data``)
``OPEN#<agent>``         ``OPEN``             which incident is open for the agent (a lock)
``COUNTER#INC-<day>``    ``COUNTER``          incident numbers of the day
``LEDGER#<key>``         ``ROW``              one compensation ledger row
``REL#<agent>``          ``<release id>``     one recorded release (JSON in ``data``)
=======================  ===================  ==============================================

Every write that could race is conditional: a new incident is written in one transaction with
the agent's open-lock (only if no incident holds it), journal entries are numbered by an atomic
counter and put only if absent, ledger claims and fenced updates are condition expressions. No
item is ever deleted (closing an incident releases the lock by removing its ``incident_id``).
The client is passed in (``Aws.client("dynamodb")``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.aws import Aws, translate_error
from agentctl.clock import Clock
from agentctl.compensate.ledger import (
    CLAIMABLE,
    RECLAIMABLE_WHEN_EXPIRED,
    Finish,
    Ledger,
    LedgerRow,
    LedgerStatus,
    row_from_dict,
)
from agentctl.errors import BadInputError, IncidentNotFoundError, StoreError
from agentctl.incidents.models import Event, Incident, IncidentStatus, JournalEntry, Operator
from agentctl.releases.catalog import ReleaseCatalog
from agentctl.releases.model import Release

SCHEME = "dynamodb://"


def table_of(url: str) -> str:
    table = url[len(SCHEME) :].strip("/")
    if not table:
        raise BadInputError(f"no table in {url!r}", hint="use dynamodb://TABLE")
    return table


def _ser(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    def fix(v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(repr(v))
        if isinstance(v, bool):
            return v
        return v

    out: dict[str, Any] = dict(TypeSerializer().serialize(fix(value)))
    return out


def _item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser(v) for k, v in data.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    out: dict[str, Any] = {}
    for key, value in item.items():
        v = de.deserialize(value)
        if isinstance(v, Decimal):
            v = int(v) if v == v.to_integral_value() and "." not in str(v) else float(v)
        out[key] = v
    return out


def _conditional_failed(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


class DynamoStore:
    """Incidents and journal in DynamoDB (same interface as the SQLite store)."""

    def __init__(self, table: str, client: Any) -> None:
        self.table = table
        self.client = client

    @classmethod
    def from_url(cls, url: str, aws: Aws) -> DynamoStore:
        return cls(table_of(url), aws.client("dynamodb"))

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(TableName=self.table, **params)
        except Exception as exc:
            if _conditional_failed(exc):
                raise
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise StoreError(
                    f"DynamoDB table {self.table} does not exist",
                    hint=f"create it with `agentctl store init --store dynamodb://{self.table}`",
                ) from exc
            raise translate_error(exc, f"dynamodb:{_action(operation)}") from exc

    # -- incidents -------------------------------------------------------------------------------
    def open_or_join(
        self, agent: str, *, at: datetime, by: str, reason: str = ""
    ) -> tuple[Incident, bool]:
        for _ in range(10):
            found = self.find_open(agent)
            if found is not None:
                return found, False
            prefix = Incident.day_prefix(at)
            counter = self._call(
                "update_item",
                Key=_item({"pk": f"COUNTER#{prefix}", "sk": "COUNTER"}),
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
            number = int(counter["Attributes"]["n"]["N"])
            incident = Incident.opened(agent, number, at=at, by=by, reason=reason)
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": _item(
                                    {
                                        "pk": f"OPEN#{agent}",
                                        "sk": "OPEN",
                                        "incident_id": incident.id,
                                    }
                                ),
                                "ConditionExpression": "attribute_not_exists(incident_id)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": _item(_incident_item(incident)),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
            except Exception as exc:
                if _conditional_failed(exc):
                    continue  # someone opened one meanwhile: join it
                raise translate_error(exc, "dynamodb:TransactWriteItems") from exc
            return incident, True
        raise StoreError(f"could not open an incident for {agent}: the table keeps changing")

    def find_open(self, agent: str) -> Incident | None:
        got = self._call(
            "get_item", Key=_item({"pk": f"OPEN#{agent}", "sk": "OPEN"}), ConsistentRead=True
        ).get("Item")
        if not got or "incident_id" not in got:
            return None
        incident = self.get(got["incident_id"]["S"])
        return incident if incident.status is IncidentStatus.OPEN else None

    def get(self, incident_id: str) -> Incident:
        got = self._call(
            "get_item", Key=_item({"pk": f"INC#{incident_id}", "sk": "META"}), ConsistentRead=True
        ).get("Item")
        if not got:
            raise IncidentNotFoundError(
                f"no incident {incident_id!r} in dynamodb://{self.table}",
                hint="`agentctl incidents list` shows the known ones",
            )
        return _incident(_plain(got))

    def list_incidents(
        self, *, agent: str | None = None, status: IncidentStatus | None = None, limit: int = 100
    ) -> list[Incident]:
        found: list[Incident] = []
        kwargs: dict[str, Any] = {
            "FilterExpression": "sk = :meta AND begins_with(pk, :inc)",
            "ExpressionAttributeValues": {":meta": {"S": "META"}, ":inc": {"S": "INC#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("scan", **kwargs)
            for raw in page.get("Items", []):
                incident = _incident(_plain(raw))
                if agent and incident.agent != agent:
                    continue
                if status and incident.status is not status:
                    continue
                found.append(incident)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
        return found[:limit]

    def close(self, incident_id: str, *, at: datetime, by: str) -> Incident:
        incident = self.get(incident_id)
        if incident.status is IncidentStatus.CLOSED:
            return incident
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _item({"pk": f"INC#{incident_id}", "sk": "META"}),
                            "UpdateExpression": (
                                "SET #s = :closed, closed_at = :at, closed_by = :by"
                            ),
                            "ConditionExpression": "#s = :open",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": _item(
                                {
                                    ":closed": "closed",
                                    ":open": "open",
                                    ":at": at.isoformat(),
                                    ":by": by,
                                }
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _item({"pk": f"OPEN#{incident.agent}", "sk": "OPEN"}),
                            "UpdateExpression": "REMOVE incident_id",
                            "ConditionExpression": "incident_id = :id",
                            "ExpressionAttributeValues": _item({":id": incident_id}),
                        }
                    },
                ]
            )
        except Exception as exc:
            if not _conditional_failed(exc):
                raise translate_error(exc, "dynamodb:TransactWriteItems") from exc
        return self.get(incident_id)

    # -- journal ---------------------------------------------------------------------------------
    def append(self, entry: JournalEntry) -> JournalEntry:
        from dataclasses import replace

        counter = self._call(
            "update_item",
            Key=_item({"pk": f"INC#{entry.incident_id}", "sk": "META"}),
            UpdateExpression="ADD seq :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        seq = int(counter["Attributes"]["seq"]["N"])
        entry = replace(entry, seq=seq)
        self._call(
            "put_item",
            Item=_item(
                {
                    "pk": f"INC#{entry.incident_id}",
                    "sk": f"J#{seq:012d}",
                    "data": json.dumps(entry.to_dict(), sort_keys=True, default=str),
                }
            ),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return entry

    def journal(self, incident_id: str) -> list[JournalEntry]:
        out: list[JournalEntry] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :j)",
            "ExpressionAttributeValues": _item({":pk": f"INC#{incident_id}", ":j": "J#"}),
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", **kwargs)
            out.extend(_entry(json.loads(i["data"]["S"])) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def close_connection(self) -> None:
        pass

    # -- the ledger and releases live in the same table -----------------------------------------
    def ledger(self, clock: Clock) -> DynamoLedger:
        return DynamoLedger(self, clock)

    def releases(self) -> DynamoCatalog:
        return DynamoCatalog(self)


def _action(operation: str) -> str:
    return "".join(p.capitalize() for p in operation.split("_"))


def _incident_item(incident: Incident) -> dict[str, Any]:
    data = {"pk": f"INC#{incident.id}", "sk": "META", "type": "incident", "seq": 0}
    data.update({k: v for k, v in incident.to_dict().items() if v is not None})
    return data


def _incident(data: dict[str, Any]) -> Incident:
    return Incident(
        id=data["id"],
        agent=data["agent"],
        status=IncidentStatus(data["status"]),
        opened_at=datetime.fromisoformat(data["opened_at"]),
        opened_by=data["opened_by"],
        reason=data.get("reason") or "",
        closed_at=datetime.fromisoformat(data["closed_at"]) if data.get("closed_at") else None,
        closed_by=data.get("closed_by"),
    )


def _entry(data: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        seq=data["seq"],
        incident_id=data["incident_id"],
        run_id=data["run_id"],
        at=datetime.fromisoformat(data["at"]),
        operator=Operator(arn=data["operator_arn"], user=data["operator_user"]),
        phase=data["phase"],
        event=Event(data["event"]),
        step=data["step"],
        kind=data["kind"],
        target=data["target"],
        inputs=data["inputs"],
        before=data["before"],
        after=data["after"],
        request_ids=data["request_ids"],
        error=data["error"],
        reason=data["reason"],
        message=data["message"],
        duration_ms=data["duration_ms"],
    )


# -- the ledger ----------------------------------------------------------------------------------
class DynamoLedger(Ledger):
    """The ledger's primitives as DynamoDB condition expressions, one item per row."""

    def __init__(self, store: DynamoStore, clock: Clock, workers: int = 16) -> None:
        super().__init__(clock)
        self.store = store
        self.workers = workers

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return _item({"pk": f"LEDGER#{key}", "sk": "ROW"})

    def _parallel(self, func: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [func(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(func, items))

    def _insert_missing(self, rows: Sequence[LedgerRow]) -> tuple[dict[str, LedgerRow], set[str]]:
        def put(row: LedgerRow) -> bool:
            data = {"pk": f"LEDGER#{row.key}", "sk": "ROW", **_row_data(row)}
            try:
                self.store._call(
                    "put_item", Item=_item(data), ConditionExpression="attribute_not_exists(pk)"
                )
                return True
            except Exception as exc:
                if _conditional_failed(exc):
                    return False
                raise

        created = {r.key for r, ok in zip(rows, self._parallel(put, rows), strict=True) if ok}
        stored = {r.key: r for r in self._get([r.key for r in rows])}
        return stored, created

    def _claim(
        self, keys: Sequence[str], owner: str, now: float, lease_until: float
    ) -> list[LedgerRow]:
        claimable = [s.value for s in CLAIMABLE]
        expired = [s.value for s in RECLAIMABLE_WHEN_EXPIRED]
        names = {"#s": "status"}
        values: dict[str, Any] = {":owner": owner, ":until": lease_until, ":now": now}
        values.update({f":c{i}": s for i, s in enumerate(claimable)})
        values.update({f":e{i}": s for i, s in enumerate(expired)})
        condition = (
            f"#s IN ({', '.join(f':c{i}' for i in range(len(claimable)))}) OR "
            f"(#s IN ({', '.join(f':e{i}' for i in range(len(expired)))}) AND lease_until < :now)"
        )

        def claim(key: str) -> LedgerRow | None:
            try:
                got = self.store._call(
                    "update_item",
                    Key=self._key(key),
                    UpdateExpression="SET #s = :ip, #o = :owner, lease_until = :until,"
                    " updated_at = :now",
                    ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                    ExpressionAttributeNames={**names, "#o": "owner"},
                    ExpressionAttributeValues=_item({**values, ":ip": "in_progress"}),
                    ReturnValues="ALL_OLD",
                )
            except Exception as exc:
                if _conditional_failed(exc):
                    return None
                raise
            return _row(got["Attributes"])

        return [r for r in self._parallel(claim, list(keys)) if r is not None]

    def _mark_dispatching(self, keys: Sequence[str], owner: str, now: float) -> set[str]:
        def mark(key: str) -> str | None:
            try:
                self.store._call(
                    "update_item",
                    Key=self._key(key),
                    UpdateExpression="SET dispatch_pending = :t, attempts = attempts + :one,"
                    " dispatched_at = if_not_exists(dispatched_at, :now), updated_at = :now",
                    ConditionExpression="#o = :owner AND #s = :ip AND lease_until > :now",
                    ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                    ExpressionAttributeValues=_item(
                        {":t": True, ":one": 1, ":now": now, ":owner": owner, ":ip": "in_progress"}
                    ),
                )
            except Exception as exc:
                if _conditional_failed(exc):
                    return None
                raise
            return key

        return {k for k in self._parallel(mark, list(keys)) if k is not None}

    def _finish(self, outcomes: Sequence[Finish], owner: str, now: float) -> None:
        self._parallel(lambda o: self._finish_one(o, owner, now), list(outcomes))

    def _finish_one(self, outcome: Finish, owner: str, now: float) -> bool:
        names = {"#s": "status", "#o": "owner", "#r": "result"}
        if outcome.status is LedgerStatus.COMPLETED:
            update = (
                "SET #s = :status, dispatch_pending = :f, #r = :result, updated_at = :now"
                " REMOVE #o, lease_until, #e"
            )
            condition = "#s <> :status"
            values = {":status": "completed", ":f": False, ":result": outcome.result, ":now": now}
            names["#e"] = "error"
        else:
            update = (
                "SET #s = :status, dispatch_pending = :pending, #e = :error, updated_at = :now"
                " REMOVE #o, lease_until"
            )
            condition = "#o = :owner AND #s = :ip"
            values = {
                ":status": outcome.status.value,
                ":pending": outcome.status is LedgerStatus.UNKNOWN,
                ":error": outcome.error,
                ":now": now,
                ":owner": owner,
                ":ip": "in_progress",
            }
            names = {"#s": "status", "#o": "owner", "#e": "error"}
        try:
            self.store._call(
                "update_item",
                Key=self._key(outcome.key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item(values),
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _resolve(self, key: str, status: LedgerStatus, note: str, now: float) -> None:
        try:
            self.store._call(
                "update_item",
                Key=self._key(key),
                UpdateExpression="SET #s = :status, dispatch_pending = :f, #r = :note,"
                " updated_at = :now REMOVE #o, lease_until",
                ConditionExpression="#s = :unknown OR (#s = :ip AND dispatch_pending = :t"
                " AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status", "#r": "result", "#o": "owner"},
                ExpressionAttributeValues=_item(
                    {
                        ":status": status.value,
                        ":f": False,
                        ":t": True,
                        ":note": note,
                        ":now": now,
                        ":unknown": "unknown",
                        ":ip": "in_progress",
                    }
                ),
            )
        except Exception as exc:
            if not _conditional_failed(exc):
                raise

    def _get(self, keys: Sequence[str]) -> list[LedgerRow]:
        wanted = list(dict.fromkeys(keys))
        out: list[LedgerRow] = []
        for start in range(0, len(wanted), 100):
            request = {
                self.store.table: {
                    "Keys": [self._key(k) for k in wanted[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    got = self.store.client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise translate_error(exc, "dynamodb:BatchGetItem") from exc
                out.extend(_row(i) for i in got.get("Responses", {}).get(self.store.table, []))
                request = got.get("UnprocessedKeys") or {}
        return out

    def _rows(self, agent: str) -> Iterator[LedgerRow]:
        # A scan: listing a whole ledger is rare (exports, status); claims go by key.
        kwargs: dict[str, Any] = {
            "FilterExpression": "begins_with(pk, :ledger) AND #a = :agent",
            "ExpressionAttributeNames": {"#a": "agent"},
            "ExpressionAttributeValues": _item({":ledger": "LEDGER#", ":agent": agent}),
            "ConsistentRead": True,
        }
        rows: list[LedgerRow] = []
        while True:
            page = self.store._call("scan", **kwargs)
            rows.extend(_row(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        rows.sort(key=lambda r: (r.action_ts, r.key))
        return iter(rows)


def _row_data(row: LedgerRow) -> dict[str, Any]:
    data = row.to_dict()
    data["status"] = row.status.value
    return {k: v for k, v in data.items() if v is not None}


def _row(item: dict[str, Any]) -> LedgerRow:
    data = _plain(item)
    data.pop("pk", None)
    data.pop("sk", None)
    return row_from_dict(data)


# -- releases ------------------------------------------------------------------------------------
class DynamoCatalog(ReleaseCatalog):
    def __init__(self, store: DynamoStore) -> None:
        self.store = store

    @staticmethod
    def _release_item(release: Release) -> dict[str, Any]:
        return _item(
            {"pk": f"REL#{release.agent}", "sk": release.id, "data": json.dumps(release.to_dict())}
        )

    def _put_new(self, release: Release) -> bool:
        try:
            self.store._call(
                "put_item",
                Item=self._release_item(release),
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise

    def _replace(self, release: Release) -> None:
        self.store._call("put_item", Item=self._release_item(release))

    def _all(self, agent: str) -> list[Release]:
        page = self.store._call(
            "query",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=_item({":pk": f"REL#{agent}"}),
            ConsistentRead=True,
        )
        return [Release.from_dict(json.loads(i["data"]["S"])) for i in page.get("Items", [])]

    def _everyone(self) -> list[Release]:
        page = self.store._call(
            "scan",
            FilterExpression="begins_with(pk, :rel)",
            ExpressionAttributeValues=_item({":rel": "REL#"}),
        )
        return [Release.from_dict(json.loads(i["data"]["S"])) for i in page.get("Items", [])]


# -- store init ----------------------------------------------------------------------------------
def create_table(client: Any, table: str) -> bool:
    """Create the table if missing (on-demand); True if created. Waits until it is active."""
    try:
        client.describe_table(TableName=table)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "managed-by", "Value": "agentctl"}],
        )
    except client.exceptions.ResourceInUseException:
        return False
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
    )
    return True


def init_store(url: str | None, aws: Aws) -> dict[str, Any]:
    """``agentctl store init``: create the DynamoDB table, or the SQLite file."""
    from agentctl.incidents.store import store_url

    url = store_url(url)
    if url.startswith(SCHEME):
        table = table_of(url)
        try:
            created = create_table(aws.client("dynamodb"), table)
        except Exception as exc:
            raise translate_error(exc, "dynamodb:CreateTable") from exc
        return {"store": url, "created": created}
    from pathlib import Path

    from agentctl.incidents.sqlite import SqliteStore

    path = Path(url[len("sqlite://") :] if url.startswith("sqlite:///") else url)
    existed = path.exists()
    store = SqliteStore(path)
    from agentctl.clock import SystemClock
    from agentctl.compensate.sqlite_ledger import SqliteLedger
    from agentctl.releases.catalog import SqliteCatalog

    SqliteLedger(store, SystemClock())
    SqliteCatalog(store)
    store.close_connection()
    return {"store": str(path), "created": not existed}
