"""A griffe extension: Sphinx roles in fastctrl's docstrings become Markdown code spans.

The docstrings cross-reference with Sphinx roles (``:func:`fastctrl.hook```, ``:mod:`.stats```,
``:class:`~fastctrl.policy.Controller```). mkdocstrings renders Markdown, where such a role
would show as the literal text ``:func:`` before a code span. This extension rewrites each
role to a code span of the name a reader of Sphinx output would see (``~a.b`` shows ``b``; a
leading ``.`` is relative and is dropped). It does not turn them into links: many targets are
relative (``.stats``) or private, and an unresolved autorefs link is a warning, which the
strict build turns into a failure; a code span never is.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Module, Object

#: ``:role:`target``` and ``:py:role:`target```
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const|ref):`([^`]+)`")


def shown_name(target: str) -> str:
    """The name Sphinx would print for a role's target."""
    target = re.sub(r"\s+", "", target)  # a target may wrap across docstring lines
    if "<" in target and target.endswith(">"):  # :ref:`text <label>`
        return target.split("<", 1)[0]
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target.lstrip(".")


def rewrite(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span."""
    return ROLE.sub(lambda m: f"`{shown_name(m.group(1))}`", text)


class SphinxRoles(Extension):
    """Rewrites the roles of every docstring of a package once griffe has loaded it."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        _rewrite_tree(pkg)


def _rewrite_tree(obj: Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = rewrite(obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:  # an alias's target is rewritten where it is defined
            _rewrite_tree(member)
