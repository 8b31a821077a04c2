r"""mkdocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

1. **Links out of docs/.** The pages are written for the code host, where
   ``docs/index.md`` links to ``../README.md`` and the README to ``docs/theory.md``.
   Every repository file that a page links to outside ``docs/`` joins the site under
   ``repository/`` (``repository/README.md``, ``repository/CHANGELOG.md``,
   ``repository/scripts/quickstart.py``; Markdown files become pages), and links are
   rewritten to where their targets are in the site. The Markdown files stay as the code
   host shows them.
2. **Sphinx roles in docstrings.** The docstrings are numpy style with Sphinx roles,
   which Markdown renders as ``:func:<code>~specdiag.probe</code>``. In the API
   reference, ``:math:`...``` becomes MathJax (``\(...\)``, and ``.. math::`` blocks
   ``\[...\]``), and ``:func:``, ``:class:``, ``:meth:``, ``:mod:``, ``:attr:``,
   ``:data:``, ``:exc:`` become cross-references, optional ones: a name the reference
   does not render stays plain code instead of failing the build.
3. **The public names.** ``reference/specdiag.md`` gets the table of ``import specdiag``'s
   names, each linked to where it is documented, from ``specdiag.__all__`` and the
   package's own table of lazy imports, so it cannot go stale.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
from typing import Any, Optional

from mkdocs.structure.files import File, Files

#: Where repository files outside docs/ go in the site.
OUTSIDE = "repository"
#: A Markdown link or image target: ``](target)`` or ``](target "title")``.
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?((?:\s+\"[^\"]*\")?\))")
ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")
MATH = re.compile(r":math:<code>(.*?)</code>", re.DOTALL)
MATH_BLOCK = re.compile(
    r"<p>\.\. math::\s*(.*?)</p>(\s*<div class=\"highlight\"><pre><span></span><code>(.*?)</code>"
    r"</pre></div>)?",
    re.DOTALL,
)
CODE_BLOCK = re.compile(r"<p>\.\. code-block:: \w+</p>")
MARKER = "<!-- specdiag: public names -->"


def _root(config: Any) -> str:
    return os.path.dirname(os.path.abspath(config["config_file_path"]))


def _site_uri(real: str, config: Any) -> Optional[str]:
    """Where the repository file ``real`` is in the site (None: outside the repository)."""
    docs, root = os.path.abspath(config["docs_dir"]), _root(config)
    if real.startswith(docs + os.sep):
        return os.path.relpath(real, docs).replace(os.sep, "/")
    if real.startswith(root + os.sep):
        return f"{OUTSIDE}/{os.path.relpath(real, root).replace(os.sep, '/')}"
    return None


def _targets(text: str, source: str) -> list[tuple[str, str]]:
    """``(target as written, real path)`` of the relative links of a file's Markdown."""
    found = []
    for match in LINK.finditer(text):
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            continue
        real = os.path.normpath(os.path.join(os.path.dirname(source), target))
        if os.path.isfile(real):
            found.append((target, real))
    return found


def on_files(files: Files, config: Any) -> Files:
    """Add the repository files that pages link to outside docs/, transitively."""
    docs = os.path.abspath(config["docs_dir"])
    pending = [f.abs_src_path for f in files if f.src_uri.endswith(".md") and f.abs_src_path]
    seen: set[str] = set()
    while pending:
        source = pending.pop()
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        for _, real in _targets(text, source):
            uri = _site_uri(real, config)
            if uri is None or real.startswith(docs + os.sep) or real in seen:
                continue
            seen.add(real)
            files.append(File.generated(config, uri, abs_src_path=real))
            if real.endswith(".md"):
                pending.append(real)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Links as the site needs them; the public names in the reference."""
    source, here = page.file.abs_src_path, posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        target = match.group(2)
        pairs = dict(_targets(f"]({target})", source))
        uri = _site_uri(pairs[target], config) if target in pairs else None
        if uri is None:
            return match.group(0)
        new = posixpath.relpath(uri, here or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    markdown = LINK.sub(relink, markdown)
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _public_names())
    return markdown


def _documented_at(name: str) -> Optional[str]:
    """Where the reference documents the top-level name ``specdiag.<name>``.

    None when it is neither one of the lazily imported names nor an error.
    """
    import specdiag
    import specdiag.errors

    module = getattr(specdiag, "_LAZY", {}).get(name)
    if module is not None and module.split(".")[-1] == name:
        return f"specdiag.{module}"
    if module is not None:
        package = os.path.join(os.path.dirname(specdiag.__file__), *module.split("."))
        shadowed = os.path.isfile(os.path.join(package, f"{name}.py"))  # dynamics.path_angle
        return f"specdiag.{module}.{name}" + (f".{name}" if shadowed else "")
    if name in specdiag.errors.__all__:
        return f"specdiag.errors.{name}"
    return None


def _public_names() -> str:
    """A Markdown table: each public name of ``specdiag``, linked to its documentation."""
    import specdiag

    rows = ["| name | documented as |", "|---|---|"]
    for name in specdiag.__all__:
        if name in ("__version__", "CONVENTION"):
            continue
        where = _documented_at(name) or f"specdiag.{name}"
        rows.append(f"| `sd.{name}` | [`{where}`][{where}] |")
    return "\n".join(rows)


def _reference(match: re.Match[str]) -> str:
    """A Sphinx cross-reference role as an optional autorefs reference."""
    short, identifier, call = match.group(1), match.group(2), match.group(3) or ""
    parts = identifier.split(".")
    where = _documented_at(parts[1]) if parts[0] == "specdiag" and len(parts) > 1 else None
    if where is not None:  # sd.eigs is documented as specdiag.linalg.eigs
        parts = where.split(".") + parts[2:]
    title = (parts[-1] if short else identifier) + call
    return f'<autoref identifier="{".".join(parts)}" optional><code>{title}</code></autoref>'


def _display_math(match: re.Match[str]) -> str:
    inline, block = match.group(1).strip(), match.group(3)
    tex = inline if inline else html.unescape(block or "").strip()
    return f'<div class="arithmatex">\\[{html.escape(html.unescape(tex))}\\]</div>'


def on_page_content(content: str, page: Any, config: Any, files: Files) -> str:
    """The docstrings' Sphinx roles in the API reference: math and cross-references."""
    if not page.file.src_uri.startswith("reference/"):
        return content
    content = MATH_BLOCK.sub(_display_math, content)
    content = MATH.sub(lambda m: f'<span class="arithmatex">\\({m.group(1)}\\)</span>', content)
    content = CODE_BLOCK.sub("", content)
    return ROLE.sub(_reference, content)
