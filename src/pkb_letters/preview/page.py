"""The preview's `index.html`: every sample's pages and checks, for a reviewer who is not a developer.

Takes a `PreviewRequest`, its `PreviewResult` and whether what it shows is signed off
(`preview/approvals.py`); gives the page as text. The page
asks `version.txt` every second and reloads itself when a re-render has changed it
(`pkb-letters preview --watch --serve`); opened from disk, it simply stays as it is.
"""

from __future__ import annotations

import datetime as dt
import re

import jinja2

from pkb_letters.preview.approvals import PageStatus
from pkb_letters.preview.proof import WATERMARK_TEXT, fold_lines
from pkb_letters.preview.results import (
    PAGE_PNG,
    PREVIEW_PDF,
    PROOF_PDF,
    SAMPLE_EXPIRY,
    VERSION_FILE,
    PreviewRequest,
    PreviewResult,
)
from pkb_letters.render.chunks import long_date

_FOLDS = {"half": "folded in half", "c": "C-folded in thirds", "z": "Z-folded in thirds"}

_PAGE = """<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sample letters: {{ template }}</title>
<style>
  body { font: 15px/1.45 system-ui, "Liberation Sans", Arial, sans-serif; margin: 0;
         color: #1d1d1b; background: #f3f2f1; }
  header, main { max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
  header h1 { margin: 0 0 6px; font-size: 26px; }
  .banner { background: #fff4d6; border-left: 6px solid #d49a00; padding: 8px 12px; margin: 8px 0; }
  .error { background: #fde8e8; border-left: 6px solid #c4262e; padding: 8px 12px; white-space: pre-wrap; }
  .summary { margin: 4px 0; }
  section.sample { background: #fff; border-left: 6px solid #00703c; margin: 0 0 18px; padding: 12px 16px; }
  section.sample.failed { border-left-color: #c4262e; }
  section.sample h2 { margin: 0 0 4px; font-size: 20px; }
  .status { font-size: 14px; font-weight: normal; margin-left: 8px; padding: 2px 8px; border-radius: 3px;
            background: #cce2d8; color: #005a30; }
  .failed .status { background: #f6d7d2; color: #942514; }
  .who { margin: 0 0 8px; color: #505a5f; }
  .sample-body { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start; }
  .pages { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0; }
  .pages figure { margin: 0; text-align: center; font-size: 13px; color: #505a5f; }
  .pages img { width: 170px; height: auto; border: 1px solid #b1b4b6; background: #fff; display: block; }
  table.checks { border-collapse: collapse; font-size: 14px; }
  table.checks td { padding: 2px 10px 2px 0; vertical-align: top; }
  tr.pass td.mark { color: #00703c; } tr.fail td.mark { color: #c4262e; font-weight: bold; }
  tr.fail td { color: #942514; }
  .approval { padding: 8px 12px; margin: 8px 0; border-left: 6px solid #505a5f; background: #fff; }
  .approval.approved { border-left-color: #00703c; background: #e3f1ea; }
  .approval.cannot-approve { border-left-color: #c4262e; background: #fde8e8; }
  .approval code { display: block; margin-top: 4px; padding: 4px 8px; background: #f3f2f1; user-select: all; }
</style>
</head>
<body data-version="{{ version }}" data-samples="{{ samples | length }}">
<header>
  <h1>Sample letters: {{ template }}</h1>
  <p class="banner"><strong>{{ watermark }}.</strong> These letters show exactly what will be printed, with
  made-up codes that open nothing and a made-up expiry date ({{ expiry }}). No call was made to Patients Know Best.</p>
  <p class="summary">Envelope <strong>{{ envelope }}</strong> (A4 {{ fold }}),
  separation marks <strong>{{ marks }}</strong>, printed {{ "on both sides" if duplex else "on one side" }}.
  {{ passed }} of {{ samples | length }} samples passed every check. Made {{ made }}.</p>
  {% if list_rows %}<p class="summary">The whole list has {{ list_rows }} rows;
  {% if list_exclusions %}{{ list_exclusions.values() | sum }} would get no letter because of the list rules
  ({% for reason, count in list_exclusions.items() %}{{ reason }}: {{ count }}{{ ", " if not loop.last }}{% endfor %}).
  {% else %}none breaks the list rules.{% endif %}
  <code>pkb-letters validate</code> checks every row's address against the window too.</p>{% endif %}
  <p class="summary">Open <a href="{{ preview_pdf }}">{{ preview_pdf }}</a> (the letters) or
  <a href="{{ proof_pdf }}">{{ proof_pdf }}</a> (the same pages with the envelope window, the marks' clear zone,
  the printable area and the fold{{ "s" if folds > 1 }} drawn on).</p>
  {{ approval }}
  {% if error %}<div class="error" id="render-error"><strong>The letters could not be rendered:</strong>
{{ error }}</div>{% endif %}
</header>
<main>
{% for sample in samples %}
  <section class="sample {{ 'passed' if sample.passed else 'failed' }}" id="sample-{{ loop.index }}"
           data-label="{{ sample.label }}" data-pages="{{ sample.pages | length }}">
    <h2>{{ sample.label }}<span class="status">{% if sample.reason %}no letter: {{ sample.reason }}
      {% elif sample.passed %}all checks passed{% else %}checks failed{% endif %}</span></h2>
    <p class="who">{% if sample.name %}{{ sample.name }} · {{ sample.address | join(" · ") }} · {% endif -%}
      {% if sample.reference %}reference {{ sample.reference }} · {% endif %}row {{ sample.input_row }} of the list</p>
    <div class="sample-body">
    {% if sample.pages %}<div class="pages">
      {% for page in sample.pages %}<figure><a href="{{ png(page) }}"><img src="{{ png(page) }}"
        alt="{{ sample.label }}, page {{ loop.index }}" width="170" height="240"></a>
        <figcaption>page {{ loop.index }}{{ " (blank back)" if page in sample.blank_pages }}</figcaption></figure>
      {% endfor %}
    </div>{% endif %}
    <table class="checks">
      {% for check in sample.checks %}<tr class="{{ 'pass' if check.passed else 'fail' }}">
        <td class="mark">{{ "✓" if check.passed else "✗" }}</td><td>{{ check.name }}</td>
        <td>{{ check.detail }}</td></tr>
      {% endfor %}
    </table>
    </div>
    {% if sample.pages %}<p class="who"><a href="{{ proof_pdf }}#page={{ sample.pages[0] }}">This letter in
      {{ proof_pdf }}</a>, with the envelope window and print room limits drawn on.</p>{% endif %}
  </section>
{% endfor %}
</main>
<script>
  // Thumbnails that loaded, for a reviewer's browser and for the headless test alike.
  window.addEventListener("load", () => {
    const shown = [...document.images].filter((image) => image.complete && image.naturalWidth > 0);
    document.body.dataset.imagesLoaded = String(shown.length);
  });
  // pkb-letters preview --watch --serve writes a new version.txt after each render: reload then.
  if (location.protocol.startsWith("http")) {
    setInterval(async () => {
      try {
        const answer = await fetch("{{ version_file }}", { cache: "no-store" });
        if (answer.ok && (await answer.text()).trim() !== document.body.dataset.version) location.reload();
      } catch (error) { /* the preview server stopped; keep showing what we have */ }
    }, 1000);
  }
</script>
</body>
</html>
"""

# Between these markers, so that `pkb-letters approve` can show its sign-off on a page already written.
APPROVAL_START, APPROVAL_END = "<!-- approval -->", "<!-- /approval -->"
_APPROVAL = """<!-- approval --><div class="approval {{ status.state }}" id="approval" data-state="{{ status.state }}">
{%- if status.approved_by %}<strong>Approved</strong> by
  {% for a in status.approved_by %}<span class="approver">{{ a.by }}</span> on {{ a.at }}
  {%- if a.note %} ({{ a.note }}){% endif %}{{ "; " if not loop.last }}{% endfor %}:
  a run that requires approval may print these letters with this template and these settings.
{%- elif status.failed %}<strong>Cannot be approved:</strong> {{ status.failed }} sample(s) failed a check.
  Fix the template or the settings and preview again.
{%- else %}<strong>Not approved.</strong>
  {% if status.latest %}Changed since the latest approval, by {{ status.latest.said() }}:
  {{ status.changes | join("; ") }}.{% endif %}
  When you have looked at every letter, approve them with
  <code id="approve-command">{{ status.command }}</code>
{%- endif %}</div><!-- /approval -->"""

_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_APPROVAL_TEMPLATE = _ENVIRONMENT.from_string(_APPROVAL)
_APPROVAL_SLOT = f"{{% if status %}}{_APPROVAL}{{% else %}}{APPROVAL_START}{APPROVAL_END}{{% endif %}}"
_TEMPLATE = _ENVIRONMENT.from_string(_PAGE.replace("{{ approval }}", _APPROVAL_SLOT))


def approval_html(status: PageStatus | None) -> str:
    """The page's sign-off block: approved by whom, or the command that approves it."""
    return _APPROVAL_TEMPLATE.render(status=status) if status else f"{APPROVAL_START}{APPROVAL_END}"


def with_approval(page: str, status: PageStatus, version: str) -> str:
    """A page already written, its sign-off block replaced and its version changed (a served page reloads)."""
    before, _, rest = page.partition(APPROVAL_START)
    _, _, after = rest.partition(APPROVAL_END)
    page = before + approval_html(status) + after
    return re.sub(r'data-version="[^"]*"', f'data-version="{version}"', page, count=1)


def index_html(
    request: PreviewRequest, result: PreviewResult, error: str = "", approval: PageStatus | None = None
) -> str:
    options = request.options
    return _TEMPLATE.render(
        template=request.template_dir.resolve().name,
        watermark=WATERMARK_TEXT,
        expiry=long_date(SAMPLE_EXPIRY),
        envelope=options.envelope.name,
        fold=_FOLDS.get(options.envelope.fold, options.envelope.fold),
        folds=len(fold_lines(options.envelope)),
        marks=str(options.marks.kind),
        duplex=options.duplex,
        passed=sum(1 for s in result.samples if s.passed),
        made=dt.datetime.now().strftime("%d %B %Y %H:%M:%S"),
        samples=result.samples,
        list_rows=result.list_rows,
        list_exclusions=result.list_exclusions,
        preview_pdf=PREVIEW_PDF,
        proof_pdf=PROOF_PDF,
        version=result.version,
        version_file=VERSION_FILE,
        error=error,
        status=approval,
        png=PAGE_PNG.format,
    )
