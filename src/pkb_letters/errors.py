"""The one exception tree of pkb-letters.

Exceptions are for failures that stop a stage; a bad *row* is never an
exception but an `Exclusion` record with a reason code (see `records`).

    PkbLettersError                 anything this package raises on purpose
    ├── ConfigError                 job file, settings or credentials unusable
    ├── InputFileError              the patient list cannot be read at all
    ├── TemplateError               the letter template cannot be loaded or rendered
    │   └── TemplateResourceError   it asked for a resource outside its folder (refused unread)
    ├── UnsafeTemplateError         the template reached outside its sandbox: stop the job
    ├── PkbApiError                 PKB answered in a way the job cannot continue from
    │   ├── PkbAuthError            PKB refused our credentials
    │   ├── PkbUnavailable          PKB kept failing (network, 429, 5xx): stop, resume later
    │   ├── PkbOutcomeUnknown       a code request may or may not have been carried out
    │   └── ExpiryUnreadable        PKB issued pairs whose expiry we cannot read: held, job stopped
    ├── PurgeRefused                `purge` cannot confirm a finished job folder: nothing removed
    ├── ReconcileRefused            `reconcile` cannot map the inserter's results, or the job can no longer be reprinted
    ├── ApprovalError               no sign-off covers the template and settings, or a preview cannot be signed off
    ├── InvariantError              a safety check on the job's own output failed
    ├── RenderClusterError          the Dask cluster rendering the chunks failed or went away: resume later
    └── DeliveryError               the hand-off to the mail house's drop folder failed
        ├── HostKeyError            the SFTP server's host key is unknown or has changed
        └── DeliveryConflict        the drop folder holds a different job, or this one was picked up

Third-party errors (httpx, WeasyPrint, sqlite3, paramiko) are translated at the
boundary into one of these, with context, and re-raised ``from exc``.
"""

from __future__ import annotations


class PkbLettersError(Exception):
    """Base class: the CLI maps it to a clear message and a non-zero exit."""

    exit_code = 1


class ConfigError(PkbLettersError):
    """The job's settings, job file or credentials are unusable."""

    exit_code = 2


class InputFileError(PkbLettersError):
    """The patient list as a whole cannot be read (not a single bad row)."""

    exit_code = 2


class TemplateError(PkbLettersError):
    """The letter template is missing, broken, or failed to render."""


class NoWelshTemplate(TemplateError):
    """A row asks for a Welsh letter and the template folder has none: never an English letter instead."""


class TemplateResourceError(TemplateError):
    """The template (or a patient's data in it) asked for a URL or file outside the template folder."""


class UnsafeTemplateError(PkbLettersError):
    """The template tried to reach Python internals at run time. Not a `TemplateError`
    on purpose: that is one row's problem, this is the whole template's."""


class PkbApiError(PkbLettersError):
    """PKB answered something the job cannot continue from."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PkbUnavailable(PkbApiError):
    """PKB or the network kept failing after retries; the job stops and can be resumed.

    `processed` is False when PKB certainly did not act on the request (no connection,
    429, 503), None when it may have (the answer was lost, 502, 504).
    """

    exit_code = 4

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        processed: bool | None = False,
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
        self.processed = processed


class PkbOutcomeUnknown(PkbApiError):
    """A request that creates codes failed in a way that leaves unknown whether PKB created them."""


class ExpiryUnreadable(PkbApiError):
    """PKB issued code pairs whose expiry could not be read. The pairs are held in the journal
    (never asked for again); a plain rerun cannot print them, so the message says what can."""

    exit_code = 5
    resumable = False  # the CLI's "run the same command again" hint would not help on its own


class PkbAuthError(PkbApiError):
    """PKB refused the client credentials or the access token."""


class PurgeRefused(PkbLettersError):
    """`purge` was pointed at something it cannot confirm is a finished job; it removed nothing."""

    exit_code = 2


class ReconcileRefused(PkbLettersError):
    """`reconcile` found the inserter's results unusable (an unknown piece or status, too many reprints
    without --force), or the job can no longer be reprinted (purged); it wrote and recorded nothing."""

    exit_code = 2


class ApprovalError(PkbLettersError):
    """A run that must print only approved letters found no approval covering its template and
    settings, or `approve` was asked to sign off a preview it cannot (failed checks, changed since)."""

    exit_code = 2


class InvariantError(PkbLettersError):
    """The job's own output failed a safety check (e.g. rows lost)."""

    exit_code = 3


class RenderClusterError(PkbLettersError):
    """The Dask cluster could not render the job's chunks (unreachable, gone, workers dying);
    the chunks already recorded are kept, and running the job again resumes it."""

    exit_code = 4


class DeliveryError(PkbLettersError):
    """The job could not be handed over; rerunning `deliver` resumes where it stopped."""

    exit_code = 4


class HostKeyError(DeliveryError):
    """The SFTP server's host key is not the one known for it: nothing was sent."""


class DeliveryConflict(DeliveryError):
    """Delivering would overwrite another job or hand over a job a second time."""
