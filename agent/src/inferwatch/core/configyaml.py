"""Reading the config's YAML: every scalar keeps the text it was written with, and a key given
twice is an error instead of the last one silently winning.

PyYAML types plain scalars before anything knows what a key expects: ``version: 1.10`` becomes
the float 1.1 and ``max_docs: ${MAXDOCS:-500}`` stays the string ``'${MAXDOCS:-500}'``. Here each
scalar is a ``Scalar``: a ``str`` holding the source text, with the value YAML gives it in
``.value``. The schema (``configschema``) then takes the text where it expects a string and the
value where it expects a number, a boolean or null; ``${ENV}`` expansion re-types the expanded
text by the same YAML rules (expand first, then type).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

# PyYAML is imported when a config is read, not with this module: a parse worker unpickles config
# values (``Scalar`` among them) and never reads YAML, so it does without (0.5 MB and 9 ms a process).

# The tags whose scalars become ``Scalar``: everything plain YAML types (``!!binary`` and
# explicit non-core tags keep PyYAML's value).
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))


class Scalar(str):
    """A YAML scalar: the ``str`` is its source text, ``value`` what YAML makes of it (int, float,
    bool, None, date or the same text). A quoted scalar's value is always its text."""

    value: Any

    def __new__(cls, text: str, value: Any) -> Scalar:
        obj = super().__new__(cls, text)
        obj.value = value
        return obj

    @classmethod
    def typed(cls, text: str) -> Scalar:
        """``text`` read as a plain (unquoted) YAML scalar: ``'500'`` -> 500, ``'true'`` -> True,
        ``''`` -> None, ``'1.10'`` -> 1.1 (the text stays ``'1.10'``)."""
        pyyaml, _, resolver, constructor = _yaml()
        tag = resolver.resolve(pyyaml.ScalarNode, text, (True, False))
        if tag not in _CORE_TAGS or tag == "tag:yaml.org,2002:str":
            return cls(text, text)
        return cls(text, constructor.construct_object(pyyaml.ScalarNode(tag, text)))


@functools.cache
def _yaml() -> tuple[Any, type[yaml.SafeLoader], yaml.resolver.Resolver, yaml.constructor.SafeConstructor]:
    """PyYAML, the loader that makes ``Scalar``s, and the resolver and constructor that type a
    plain scalar: made at the first use."""
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader whose core scalars are ``Scalar``s (mapping keys included)."""

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            value = super().construct_object(node, deep=deep)
            if isinstance(node, yaml.ScalarNode) and node.tag in _CORE_TAGS:
                return Scalar(node.value, value)
            return value

    return yaml, Loader, yaml.resolver.Resolver(), yaml.constructor.SafeConstructor()


def duplicate_keys(node: yaml.Node | None, path: str = "") -> list[tuple[str, str]]:
    """One problem per key given twice in one mapping, naming both lines (YAML itself keeps the
    last one silently, so a second ``agent:`` block would replace the first)."""
    pyyaml = _yaml()[0]
    problems: list[tuple[str, str]] = []
    seen: set[int] = set()

    def walk(n: yaml.Node, at: str) -> None:
        if id(n) in seen:  # an alias: already checked where the anchor is
            return
        seen.add(id(n))
        if isinstance(n, pyyaml.MappingNode):
            lines: dict[str, int] = {}
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, pyyaml.ScalarNode) else None
                if key is None or key == "<<":
                    walk(value_node, at)
                    continue
                line = key_node.start_mark.line + 1
                sub = f"{at}.{key}" if at else str(key)
                if key in lines:
                    problems.append(
                        (
                            sub,
                            f"given twice, at line {lines[key]} and line {line} (YAML would keep only "
                            "the last); merge the two into one",
                        )
                    )
                else:
                    lines[key] = line
                walk(value_node, sub)
        elif isinstance(n, pyyaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, f"{at}[{i}]")

    if node is not None:
        walk(node, path)
    return problems


def load_yaml(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """The document in ``text`` with ``Scalar``s, and the duplicate-key problems (as
    ``(key path, reason)``). Raises ``yaml.YAMLError`` on a syntax error."""
    loader = _yaml()[1](text)
    try:
        node = loader.get_single_node()
        problems = duplicate_keys(node)
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, problems


def plain(value: Any) -> Any:
    """``value`` with every ``Scalar`` replaced by its YAML value (for code that wants what
    ``yaml.safe_load`` would give)."""
    if isinstance(value, Scalar):
        return value.value
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


__all__ = ["Scalar", "duplicate_keys", "load_yaml", "plain"]
