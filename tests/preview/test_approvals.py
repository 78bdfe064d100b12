"""Sign-offs: a preview approved with `pkb-letters approve`, and runs that print only what was approved,
against a real sandbox PKB whose request log shows a refused run never reached it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SANDBOX_JSON, demo_settings

from pkb_letters.assemble.print_options import PrintOptions
from pkb_letters.cli import main
from pkb_letters.config import DEFAULT_TEMPLATE, SANDBOX_JOIN_URL, LetterSettings, RuleSettings, sandbox_connection
from pkb_letters.envelope import DL
from pkb_letters.errors import ApprovalError
from pkb_letters.job.manifest import MANIFEST_JSON
from pkb_letters.job.pipeline import job_fingerprint, run_job
from pkb_letters.job.status import job_status
from pkb_letters.preview.approvals import PREVIEW_RECORD
from pkb_letters.preview.results import PreviewRequest
from pkb_letters.preview.samples_run import render_preview
from pkb_letters.render.chunks import LetterTemplate
from pkb_letters.render.template_digest import APPROVALS_FILE, directory_digest
from pkb_letters.sandbox import SandboxServer, load_sandbox_data

# As conftest's demo jobs print them: the preview must be made with the settings the run uses.
LETTER = LetterSettings(organisation="Demo NHS Foundation Trust", join_url=SANDBOX_JOIN_URL)
STRAY = '<p style="position: absolute; left: -9mm; top: 269mm; margin: 0">Stray note written here</p>'


def previewed(tmp_path: Path, letter_html_extra: str = "") -> tuple[Path, Path]:
    """A copy of the default template and a one-sample preview of it: (template, preview folder)."""
    template = tmp_path / "invitation"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    if letter_html_extra:
        html = template / "letter.html"
        html.write_text(html.read_text(encoding="utf-8") + letter_html_extra, encoding="utf-8")
    out = tmp_path / "preview"
    render_preview(PreviewRequest(out_dir=out, template_dir=template, letter=LETTER, count=1))
    return template, out


def approve(preview: Path, *extra: str):
    return CliRunner().invoke(main, ["approve", str(preview), *extra])


def approved(tmp_path: Path) -> Path:
    template, preview = previewed(tmp_path)
    done = approve(preview, "--by", "Ann Reviewer", "--note", "wording agreed with the IG lead")
    assert done.exit_code == 0, done.output
    return template


def run_requiring_approval(server: SandboxServer, out: Path, template: Path, options: PrintOptions | None = None):
    settings = demo_settings(out, "fhir", template_dir=template, rules=RuleSettings(require_approval=True))
    return run_job(settings, sandbox_connection(server), print_options=options or PrintOptions())


@pytest.fixture
def fresh_sandbox():
    """A sandbox of this test's own, so its request log holds this test's requests alone."""
    with SandboxServer(load_sandbox_data(SANDBOX_JSON)) as server:
        yield server


def test_preview_approve_then_a_run_requiring_approval_prints_under_it(tmp_path, fresh_sandbox):
    template = approved(tmp_path)
    recorded = json.loads((template / APPROVALS_FILE).read_text(encoding="utf-8"))["approvals"]
    assert [(a["by"], a["note"]) for a in recorded] == [("Ann Reviewer", "wording agreed with the IG lead")]
    (approval,) = recorded
    assert approval["template_sha256"] == directory_digest(template)
    assert set(approval["template_files"]) >= {"letter.html", "letter.css"}
    assert approval["settings"]["envelope.name"] == "c5" and approval["settings"]["letter.join_url"] == SANDBOX_JOIN_URL
    assert approval["samples"]["labels"] == ["Ordinary address"]
    preview_record = json.loads((tmp_path / "preview" / PREVIEW_RECORD).read_text(encoding="utf-8"))
    assert approval["preview_pdf_sha256"] == preview_record["preview_pdf_sha256"] != ""

    summary = run_requiring_approval(fresh_sandbox, tmp_path / "job", template)

    assert summary.letters == 8
    job = json.loads((tmp_path / "job" / MANIFEST_JSON).read_text(encoding="utf-8"))["job"]
    assert job["approval"] == {
        "by": "Ann Reviewer",
        "at": approval["at"],
        "template_sha256": directory_digest(template),
        "note": "wording agreed with the IG lead",
    }
    report = job_status(tmp_path / "job").report()
    assert f"approved by    Ann Reviewer on {approval['at']} (template sha256 {directory_digest(template)[:12]}…)" in (
        report
    )


@pytest.mark.parametrize(
    "change, named",
    [
        ("letter", "template file letter.html changed"),
        ("envelope", "setting envelope.name: approved 'c5', now 'dl'"),
    ],
)
def test_a_change_since_the_approval_is_refused_before_any_request_naming_it(tmp_path, fresh_sandbox, change, named):
    template = approved(tmp_path)
    options = PrintOptions()
    if change == "letter":  # one word
        html = template / "letter.html"
        text = html.read_text(encoding="utf-8")
        assert "Dear" in text
        html.write_text(text.replace("Dear", "Hello", 1), encoding="utf-8")
    else:
        options = PrintOptions(envelope=DL)
    with pytest.raises(ApprovalError, match="Changed since the latest approval, by Ann Reviewer") as refused:
        run_requiring_approval(fresh_sandbox, tmp_path / "job", template, options)
    assert named in str(refused.value)
    assert fresh_sandbox.stats.arrivals == []  # not even a token request
    assert not (tmp_path / "job").exists()


def test_the_cli_refuses_with_require_approval_and_exit_code_2(tmp_path):
    template = tmp_path / "invitation"
    shutil.copytree(DEFAULT_TEMPLATE, template)
    patients = Path(SANDBOX_JSON).with_name("patients.csv")
    args = ["run", str(patients), "--sandbox", "--template", str(template), "--out", str(tmp_path / "job")]
    refused = CliRunner().invoke(main, [*args, "--require-approval"])
    assert refused.exit_code == 2
    assert "it has never been approved" in refused.output
    assert not (tmp_path / "job").exists()


def test_a_preview_that_failed_a_check_cannot_be_approved(tmp_path):
    template, preview = previewed(tmp_path, letter_html_extra=STRAY)
    assert 'data-state="cannot-approve"' in (preview / "index.html").read_text(encoding="utf-8")
    refused = approve(preview, "--by", "Ann Reviewer")
    assert refused.exit_code == 2
    assert "cannot be approved: 1 sample(s) failed a check (Ordinary address)" in refused.output
    assert not (template / APPROVALS_FILE).exists()


def test_a_preview_whose_template_changed_since_cannot_be_approved(tmp_path):
    template, preview = previewed(tmp_path)
    (template / "letter.css").write_text("p { color: red; }\n", encoding="utf-8")
    refused = approve(preview, "--by", "Ann Reviewer")
    assert refused.exit_code == 2
    assert "the template changed since this preview was made (template file letter.css changed)" in refused.output
    assert not (template / APPROVALS_FILE).exists()


def test_an_approvals_file_edited_to_claim_the_new_digest_covers_nothing(tmp_path, fresh_sandbox):
    template = approved(tmp_path)
    html = template / "letter.html"
    html.write_text(html.read_text(encoding="utf-8").replace("Dear", "Hello", 1), encoding="utf-8")
    approvals = json.loads((template / APPROVALS_FILE).read_text(encoding="utf-8"))
    approvals["approvals"][0]["template_sha256"] = directory_digest(template)  # the edited template's digest
    (template / APPROVALS_FILE).write_text(json.dumps(approvals), encoding="utf-8")
    with pytest.raises(ApprovalError, match=f"{APPROVALS_FILE} was edited by hand"):
        run_requiring_approval(fresh_sandbox, tmp_path / "job", template)
    assert fresh_sandbox.stats.arrivals == []


def test_approving_leaves_the_template_digest_and_so_a_job_fingerprint_unchanged(tmp_path):
    template, preview = previewed(tmp_path)
    settings = demo_settings(tmp_path / "job", "fhir", template_dir=template)
    before = job_fingerprint(settings, LetterTemplate(template), PrintOptions())
    assert approve(preview, "--by", "Ann Reviewer").exit_code == 0
    assert (template / APPROVALS_FILE).exists()
    required = dataclasses.replace(settings, rules=RuleSettings(require_approval=True))
    assert job_fingerprint(required, LetterTemplate(template), PrintOptions()) == before


def test_approve_needs_a_rendered_preview_and_a_name(tmp_path):
    template, preview = previewed(tmp_path)
    assert approve(preview, "--by", "  ").exit_code == 2
    (preview / PREVIEW_RECORD).unlink()
    missing = approve(preview, "--by", "Ann Reviewer")
    assert missing.exit_code == 2 and f"holds no {PREVIEW_RECORD}" in missing.output
    assert not (template / APPROVALS_FILE).exists()


def test_a_new_preview_of_a_changed_template_says_what_changed_since_the_approval(tmp_path):
    template = approved(tmp_path)
    html = template / "letter.html"
    html.write_text(html.read_text(encoding="utf-8").replace("Dear", "Hello", 1), encoding="utf-8")
    render_preview(PreviewRequest(out_dir=tmp_path / "again", template_dir=template, letter=LETTER, count=1))
    page = (tmp_path / "again" / "index.html").read_text(encoding="utf-8")
    assert 'data-state="not-approved"' in page
    assert "Changed since the latest approval, by Ann Reviewer" in page
    assert "template file letter.html changed" in page


def test_an_approvals_file_not_of_the_shape_approve_writes_is_a_clear_refusal(tmp_path, fresh_sandbox):
    template = approved(tmp_path)
    approvals = json.loads((template / APPROVALS_FILE).read_text(encoding="utf-8"))
    approvals["approvals"][0]["template_files"] = ["letter.html"]
    (template / APPROVALS_FILE).write_text(json.dumps(approvals), encoding="utf-8")
    with pytest.raises(ApprovalError, match="cannot be read as approvals: the approval by 'Ann Reviewer'"):
        run_requiring_approval(fresh_sandbox, tmp_path / "job", template)
    assert fresh_sandbox.stats.arrivals == []
