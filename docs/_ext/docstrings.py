"""Griffe extension of the docs build (mkdocs.yml): the package's numpy/Sphinx docstrings -> mkdocstrings.

- Sphinx roles (``:class:`~skdynemb.embeddings.ElementEmbeddings```) become optional autorefs
  links: a link where the target is documented on the site, plain code otherwise (plain text
  inside literal blocks, whose ``::`` marker becomes ``:``).
- Grouped parameter entries (``lr, weight_decay : float``) are split into one entry per name:
  griffe gives every name of a group the first name's default value.

Docstrings are typed numpydoc (``name : type`` then an indented description); nothing here
guesses types.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(\(\))?`")
_GROUPED = re.compile(r"^(\s*)(\w+(?:, \w+)+) :(.*)$")
def _split_grouped(text: str) -> str:
    """``a, b : desc`` (with its indented continuation lines) -> ``a : desc`` and ``b : desc``."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        match = _GROUPED.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, names, rest = match.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) > len(indent):
            end += 1
        for name in names.split(", "):
            out += [f"{indent}{name} :{rest}", *lines[i + 1 : end]]
        i = end
    return "\n".join(out)


def _resolve(obj, target: str) -> str:
    """Full path of ``target`` as seen from ``obj``: dotted paths as given, short names looked up
    in the enclosing class/module scopes (following imports)."""
    if "." in target:
        return target
    scope = obj if (obj.is_module or obj.is_class) else obj.parent
    while scope is not None:
        member = scope.members.get(target)
        if member is not None:
            return member.target_path if member.is_alias else member.path
        scope = scope.parent
    return f"{obj.module.path}.{target}"


class AdaptDocstrings(griffe.Extension):
    """Rewrite every docstring once the object tree is built (see the module docstring)."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.is_alias or obj.docstring is None:
            return

        def link(match: re.Match) -> str:
            tilde, target, call = match.group(1), match.group(2), match.group(3) or ""
            title = target.rsplit(".", 1)[-1] if tilde else target
            return f'<autoref identifier="{_resolve(obj, target)}" optional><code>{title}{call}</code></autoref>'

        lines, literal_indent = [], None
        for line in obj.docstring.value.split("\n"):
            indent = len(line) - len(line.lstrip())
            if literal_indent is not None and line.strip() and indent <= literal_indent:
                literal_indent = None
            if literal_indent is None:
                line = _ROLE.sub(link, line)
                if line.endswith("::"):  # reST literal block marker; Markdown needs just the indent
                    line, literal_indent = line[:-1], indent
            else:  # inside a literal block: keep the plain name
                line = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), line)
            lines.append(line)
        obj.docstring.value = _split_grouped("\n".join(lines))
