"""The journal's code pairs: requests written down before they are sent, the pairs PKB issued,
pairs carried over from a replaced job, re-issues, and erasing them all once letters are posted.

Code requests are written down *before* they are sent (`begin_code_request`) and cleared when
the answer is recorded, so after a crash the journal knows which patients PKB may have
issued codes to without us seeing them. A second request for such a patient, or for one
whose codes expire too soon, is a re-issue: the row's `reissue` column and the `events`
table say why. Takes eligible rows; gives them the stage ``coded`` (or ``excluded``). A pair PKB
issued whose expiry could not be read is ``held``: kept, never asked for again, until it can be read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from pkb_letters.job import rowcodec
from pkb_letters.job.events import Events
from pkb_letters.job.sql import Db, now
from pkb_letters.records import CodePair, Exclusion, HeldPair, Reissue, Stage


class Codes:
    def __init__(self, db: Db, events: Events) -> None:
        self._db = db
        self._events = events
        self.run = 0  # which run of the job this is; pairs issued by earlier runs are re-checked for expiry

    # -- asking PKB --------------------------------------------------------------
    def begin_code_request(self, input_rows: Iterable[int]) -> None:
        """Write down, before asking PKB, that these rows' codes are being requested.

        A row whose earlier request never got an answer is marked as a re-issue first.
        """
        rows = list(input_rows)
        stamp = now()
        with self._db.transaction():
            unanswered = self._db.execute(
                f"SELECT input_row, codes_requested FROM rows WHERE codes_requested IS NOT NULL"
                f" AND input_row IN ({', '.join('?' * len(rows))})",
                rows,
            ).fetchall()
            for earlier in unanswered:
                self._db.execute(
                    "UPDATE rows SET reissue = ? WHERE input_row = ?", (Reissue.LOST_RESPONSE, earlier["input_row"])
                )
                self._events.add(
                    "reissue",
                    f"{Reissue.LOST_RESPONSE}: the answer to the code request sent at "
                    f"{earlier['codes_requested']} never arrived; PKB may have issued a pair",
                    earlier["input_row"],
                )
            self._db.executemany(
                "UPDATE rows SET codes_requested = ?, updated = ? WHERE input_row = ?",
                ((stamp, stamp, input_row) for input_row in rows),
            )

    def cancel_code_request(self, input_rows: Iterable[int]) -> None:
        """PKB certainly did not act on the request (it was never sent, or refused before any work)."""
        with self._db.transaction():
            self._db.executemany(
                "UPDATE rows SET codes_requested = NULL WHERE input_row = ?", ((r,) for r in input_rows)
            )

    def record_issued(
        self,
        pairs: Iterable[tuple[int, CodePair]],
        refusals: Iterable[Exclusion],
        held: Iterable[tuple[int, HeldPair]] = (),
    ) -> None:
        """A code request's answer: pairs to print, pairs whose expiry could not be read (held, so they
        are neither lost nor asked for again), and patients PKB gave no pair to."""
        stamp = now()
        with self._db.transaction():
            self._hold(held, stamp)
            self._db.executemany(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = ?,"
                " codes_issued = ?, codes_run = ?, codes_requested = NULL, updated = ? WHERE input_row = ?",
                (
                    (
                        Stage.CODED,
                        c.invitation_code,
                        c.access_code,
                        c.expires.isoformat(),
                        stamp,
                        self.run,
                        stamp,
                        input_row,
                    )
                    for input_row, c in pairs
                ),
            )
            self._db.executemany(
                "UPDATE rows SET stage = ?, reason = ?, detail = ?, codes_requested = NULL, updated = ?"
                " WHERE input_row = ?",
                ((Stage.EXCLUDED, e.reason, e.detail, stamp, e.input_row) for e in refusals),
            )

    def _hold(self, held: Iterable[tuple[int, HeldPair]], stamp: str) -> None:
        for input_row, pair in held:
            self._db.execute(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = NULL,"
                " codes_expiry_part = ?, detail = ?, codes_issued = ?, codes_run = ?, codes_requested = NULL,"
                " updated = ? WHERE input_row = ?",
                (
                    Stage.HELD,
                    pair.invitation_code,
                    pair.access_code,
                    pair.expiry_part,
                    pair.problem,
                    stamp,
                    self.run,
                    stamp,
                    input_row,
                ),
            )
            self._events.add("held", f"PKB issued a pair whose expiry could not be read: {pair.problem}", input_row)

    def held(self) -> list[tuple[int, HeldPair]]:
        """Rows holding a pair whose expiry could not be read, in input order."""
        rows = self._db.execute("SELECT * FROM rows WHERE stage = ? ORDER BY input_row", (Stage.HELD,))
        return [(r["input_row"], rowcodec.held_pair(r)) for r in rows]

    def release_held(self, input_row: int, expires: dt.date) -> None:
        """A held pair's expiry is now read: the pair goes on to be printed like any other."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE rows SET stage = ?, codes_expire = ?, detail = NULL, updated = ?"
                " WHERE input_row = ? AND stage = ?",
                (Stage.CODED, expires.isoformat(), now(), input_row, Stage.HELD),
            )
            self._events.add("released", f"the held pair's expiry was read: {expires.isoformat()}", input_row)

    def requested_without_answer(self) -> list[int]:
        rows = self._db.execute(
            "SELECT input_row FROM rows WHERE codes_requested IS NOT NULL AND stage = ? ORDER BY input_row",
            (Stage.ELIGIBLE,),
        )
        return [r["input_row"] for r in rows]

    # -- re-issues ------------------------------------------------------------------
    def coded_expiring_before(self, day: dt.date) -> list[tuple[int, dt.date]]:
        """Coded rows whose pair expires before `day`, issued by an earlier run (or job) than this one.

        A pair PKB has just issued is as fresh as PKB makes them; asking again would not help.
        """
        rows = self._db.execute(
            "SELECT input_row, codes_expire FROM rows WHERE stage = ? AND codes_expire < ?"
            " AND (codes_run IS NULL OR codes_run < ?) ORDER BY input_row",
            (Stage.CODED, day.isoformat(), self.run),
        )
        return [(r["input_row"], dt.date.fromisoformat(r["codes_expire"])) for r in rows]

    def send_back_for_reissue(self, input_rows: Iterable[int], why: Reissue, detail: str) -> None:
        """Coded rows whose pair must not be printed go back to `eligible` to be asked again."""
        stamp = now()
        with self._db.transaction():
            for input_row in input_rows:
                self._db.execute(
                    "UPDATE rows SET stage = ?, reissue = ?, invitation_code = NULL, access_code = NULL,"
                    " codes_expire = NULL, codes_issued = NULL, updated = ? WHERE input_row = ?",
                    (Stage.ELIGIBLE, why, stamp, input_row),
                )
                self._events.add("reissue", f"{why}: {detail}", input_row)

    def reissues(self) -> dict[int, str]:
        """input row → why its printed pair is a second one."""
        rows = self._db.execute("SELECT input_row, reissue FROM rows WHERE reissue IS NOT NULL")
        return {r["input_row"]: r["reissue"] for r in rows}

    def count_reissues(self, stage: Stage | None = None) -> dict[str, int]:
        """Why pairs are second ones → how many, over every row or those at `stage`; sorted by why."""
        rows = self._db.execute(
            "SELECT reissue, COUNT(*) AS n FROM rows WHERE reissue IS NOT NULL AND (? IS NULL OR stage = ?)"
            " GROUP BY reissue ORDER BY reissue",
            (stage, stage),
        )
        return {r["reissue"]: r["n"] for r in rows}

    # -- carrying codes over a restart ---------------------------------------------------
    def carry_codes_from(self, previous: Codes) -> int:
        """Remember the previous job's pairs (and unanswered requests), by NHS number."""
        rows = previous._db.execute(
            "SELECT nhs_number, invitation_code, access_code, codes_expire, codes_issued, codes_requested,"
            " codes_expiry_part FROM rows WHERE invitation_code IS NOT NULL OR codes_requested IS NOT NULL"
        ).fetchall()
        with self._db.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO carried_codes (nhs_number, invitation_code, access_code, codes_expire,"
                " codes_issued, uncertain, codes_expiry_part) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        r["nhs_number"],
                        r["invitation_code"],
                        r["access_code"],
                        r["codes_expire"],
                        r["codes_issued"],
                        int(r["invitation_code"] is None),
                        # a held pair's problem travels with its expiry part (re-read when it is taken)
                        r["codes_expiry_part"] if r["codes_expire"] is None and r["invitation_code"] else None,
                    )
                    for r in rows
                ),
            )
        return len(rows)

    def carried_codes(self, nhs_number: str) -> tuple[CodePair | HeldPair | None, bool]:
        """A pair issued for this NHS number in the job this one replaced (held, when its expiry could not
        be read), and whether one may be unseen."""
        row = self._db.execute("SELECT * FROM carried_codes WHERE nhs_number = ?", (nhs_number,)).fetchone()
        if row is None:
            return None, False
        if row["uncertain"]:
            return None, True
        if row["codes_expire"] is None:
            return HeldPair(
                row["invitation_code"],
                row["access_code"],
                row["codes_expiry_part"] or "null",
                "carried over from the job this one replaced, expiry not read",
            ), False
        return rowcodec.codes(row), False

    def hold_carried(self, input_row: int, pair: HeldPair) -> None:
        """After a restart: the replaced job held this patient's pair; this job holds it too."""
        with self._db.transaction():
            self._hold([(input_row, pair)], now())
            self._events.add("carried", "held code pair carried over from the job this one replaced", input_row)

    def eligible_with_carried_codes(self) -> Iterator[tuple[int, str]]:
        """(input row, NHS number) of eligible rows whose number the replaced job asked codes for, a page
        at a time; a row that takes its pair while this is read is not given again."""
        query = (
            "SELECT rows.input_row, rows.nhs_number FROM rows JOIN carried_codes"
            " ON carried_codes.nhs_number = rows.nhs_number WHERE rows.stage = ?"
        )
        for r in self._db.pages(query, (Stage.ELIGIBLE,), ("rows.input_row",)):
            yield r["input_row"], r["nhs_number"]

    def mark_lost_response_from_previous_job(self, input_row: int) -> None:
        """The replaced job asked for this patient's codes and never saw an answer."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE rows SET codes_requested = ? WHERE input_row = ? AND codes_requested IS NULL",
                (now(), input_row),
            )

    def take_carried_codes(self, input_row: int, codes: CodePair) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE rows SET stage = ?, invitation_code = ?, access_code = ?, codes_expire = ?,"
                " codes_issued = ?, updated = ? WHERE input_row = ?",
                (
                    Stage.CODED,
                    codes.invitation_code,
                    codes.access_code,
                    codes.expires.isoformat(),
                    now(),
                    now(),
                    input_row,
                ),
            )
            self._events.add("carried", "code pair carried over from the job this one replaced", input_row)

    # -- purge -----------------------------------------------------------------------------
    def erase_codes(self) -> int:
        """Set every code to NULL and rebuild the file, so no free page keeps an old value.
        Gives the number of rows whose codes were erased."""
        self._db.execute("PRAGMA secure_delete = ON")  # zero freed content as it is freed
        with self._db.transaction():
            erased = self._db.execute(
                "UPDATE rows SET invitation_code = NULL, access_code = NULL, updated = ?"
                " WHERE invitation_code IS NOT NULL OR access_code IS NOT NULL",
                (now(),),
            ).rowcount
        self._db.execute("VACUUM")
        return erased
