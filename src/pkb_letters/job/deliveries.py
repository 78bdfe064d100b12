"""The journal's `deliveries` table: each `pkb-letters deliver` attempt, as a `Delivery` record."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict

from pkb_letters.job.sql import Db
from pkb_letters.records import DeliveredFile, Delivery, DeliveryOutcome


class Deliveries:
    def __init__(self, db: Db) -> None:
        self._db = db

    def record(self, delivery: Delivery) -> None:
        files = json.dumps([asdict(f) for f in delivery.files])
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO deliveries (started, finished, destination, outcome, host_key, files, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery.started.isoformat(timespec="seconds"),
                    delivery.finished.isoformat(timespec="seconds"),
                    delivery.destination,
                    delivery.outcome,
                    delivery.host_key,
                    files,
                    delivery.detail,
                ),
            )

    def attempts(self) -> list[Delivery]:
        """Every delivery attempt of this job, oldest first (for `status` and for `deliver` itself)."""
        return [
            Delivery(
                started=dt.datetime.fromisoformat(r["started"]),
                finished=dt.datetime.fromisoformat(r["finished"]),
                destination=r["destination"],
                outcome=DeliveryOutcome(r["outcome"]),
                host_key=r["host_key"],
                files=tuple(DeliveredFile(**f) for f in json.loads(r["files"])),
                detail=r["detail"],
            )
            for r in self._db.execute("SELECT * FROM deliveries ORDER BY id")
        ]
