"""The Jinja environment customer templates run in, and how their failures are reported.

Templates are untrusted input: Jinja's sandbox already refuses Python internals at run
time; on top of it, `NoPythonInternals` refuses them when a template is *loaded*, so a
template that reaches for `''.__class__` or `cycler.__init__.__globals__` stops the job
before any code is issued, naming the file and line. Errors raised while rendering one
letter are translated here into `TemplateError` (that row's problem) or, for a sandbox
violation, `UnsafeTemplateError` (the whole template's problem).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import jinja2
from jinja2 import sandbox
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream

from pkb_letters.errors import TemplateError, UnsafeTemplateError

# What Jinja's own sandbox refuses to look up (besides names starting with "_").
_UNSAFE_NAMES = frozenset(
    {"mro"}
    | sandbox.UNSAFE_FUNCTION_ATTRIBUTES
    | sandbox.UNSAFE_METHOD_ATTRIBUTES
    | sandbox.UNSAFE_GENERATOR_ATTRIBUTES
    | sandbox.UNSAFE_COROUTINE_ATTRIBUTES
    | sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
_DUNDER = re.compile(r"__\w*")


def is_unsafe_name(name: str) -> bool:
    return name.startswith("_") or name in _UNSAFE_NAMES


class NoPythonInternals(Extension):
    """Refuse, at load time, `.name` lookups and string keys that only reach Python internals."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        previous: Token | None = None
        for token in stream:
            if _reaches_internals(previous, token):
                raise jinja2.TemplateSyntaxError(
                    f"reaches for Python internals ({token.value!r}); a template may use only the "
                    "letter's variables listed in templates/README.md",
                    token.lineno,
                    stream.name,
                    stream.filename,
                )
            previous = token
            yield token


def _reaches_internals(previous: Token | None, token: Token) -> bool:
    if token.type == "name" and previous is not None and previous.type == "dot":
        return is_unsafe_name(token.value)
    if token.type == "string":  # ''['__class__'] or x|attr('__globals__')
        return bool(_DUNDER.fullmatch(token.value)) or token.value in _UNSAFE_NAMES
    return False


def template_environment(directory: Path) -> sandbox.SandboxedEnvironment:
    """Sandboxed, autoescaped, strict about undefined variables, loading only from `directory`."""
    return sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=[NoPythonInternals],
    )


def render_error(exc: Exception, directory: Path, default_name: str) -> TemplateError | UnsafeTemplateError:
    """Translate an exception raised while rendering into ours, naming the template file and line."""
    where = _template_location(exc.__traceback__, directory) or default_name
    if isinstance(exc, sandbox.SecurityError):
        return UnsafeTemplateError(f"{where}: {exc} The template may not reach outside its variables.")
    if isinstance(exc, jinja2.TemplateSyntaxError):  # an {% include %} that does not parse
        return TemplateError(f"{exc.filename or where}, line {exc.lineno}: {exc.message}")
    if isinstance(exc, jinja2.TemplateError):
        return TemplateError(f"{where}: {exc}")
    return TemplateError(f"{where}: {type(exc).__name__}: {exc}")


def _template_location(tb: TracebackType | None, directory: Path) -> str | None:
    """'invitation/letter.html, line 12': the innermost traceback frame Jinja mapped to a template file."""
    location = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(str(directory)):
            location = f"{directory.name}/{Path(filename).relative_to(directory)}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return location
