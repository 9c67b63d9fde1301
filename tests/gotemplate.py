"""Just enough of Go's text/template to render Ollama chat templates in tests (Go is not installed here).

Supported, with Go's semantics: text; `{{- ` and ` -}}` trimming of the adjacent whitespace;
`range $i, $v := .Field` (and `range .Field`), `if` / `else` / `end`; fields `.A.B` on the current
value (`.` changes inside range), variables `$i`, `$v` and `$` (the root); the functions `and`,
`or`, `not`, `eq`, `ne`, `len`; double-quoted string and integer literals; parenthesised calls.
Anything else raises, so a template using more than this fails the test instead of passing it.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = template[pos:]
    out.append(("text", text.lstrip() if trim_next else text))
    return out


def _parse(tokens: list[tuple[str, str]], i: int, stop: tuple[str, ...]) -> tuple[list[Any], int, str]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
            continue
        word = value.split(" ", 1)[0]
        if word in stop:
            return nodes, i, value
        if word == "range":
            body, i, end = _parse(tokens, i, ("end",))
            nodes.append(("range", value[len("range") :].strip(), body))
        elif word == "if":
            body, i, end = _parse(tokens, i, ("end", "else"))
            other: list[Any] = []
            if end == "else":
                other, i, _ = _parse(tokens, i, ("end",))
            nodes.append(("if", value[len("if") :].strip(), body, other))
        else:
            nodes.append(("print", value))
    if stop:
        raise ValueError(f"missing {{{{ {stop[0]} }}}}")
    return nodes, i, ""


def _split_args(expr: str) -> list[str]:
    args, depth, current = [], 0, ""
    for ch in expr + " ":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == " " and depth == 0 and not current.count('"') % 2:
            if current:
                args.append(current)
            current = ""
        else:
            current += ch
    return args


FUNCS = {
    "and": lambda *a: next((x for x in a if not x), a[-1]),
    "or": lambda *a: next((x for x in a if x), a[-1]),
    "not": lambda a: not a,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "len": len,
}


def _eval(expr: str, dot: Any, env: dict[str, Any]) -> Any:
    args = _split_args(expr.strip())
    if len(args) > 1 or args[0] in FUNCS:
        name, *rest = args
        if name not in FUNCS:
            raise ValueError(f"unsupported function {name!r}")
        return FUNCS[name](*(_value(a, dot, env) for a in rest))
    return _value(args[0], dot, env)


def _value(arg: str, dot: Any, env: dict[str, Any]) -> Any:
    if arg.startswith("(") and arg.endswith(")"):
        return _eval(arg[1:-1], dot, env)
    if arg.startswith('"'):
        return shlex.split(arg)[0]
    if arg.isdigit():
        return int(arg)
    if arg.startswith("$"):
        head, _, rest = arg.partition(".")
        base = env[head]
        return _fields(base, rest) if rest else base
    if arg.startswith("."):
        return _fields(dot, arg[1:])
    raise ValueError(f"unsupported argument {arg!r}")


def _fields(value: Any, path: str) -> Any:
    for name in filter(None, path.split(".")):
        value = value[name]
    return value


def _run(nodes: list[Any], dot: Any, env: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "print":
            out.append(str(_eval(node[1], dot, env)))
        elif node[0] == "if":
            _run(node[2] if _eval(node[1], dot, env) else node[3], dot, env, out)
        elif node[0] == "range":
            head, _, expr = node[1].rpartition(":=")
            names = [n.strip() for n in head.split(",")] if head else []
            for index, item in enumerate(_eval(expr, dot, env)):
                scope = dict(env)
                if len(names) == 2:
                    scope[names[0]], scope[names[1]] = index, item
                elif names:
                    scope[names[0]] = item
                _run(node[2], item, scope, out)


def render(template: str, data: dict[str, Any]) -> str:
    nodes, _, _ = _parse(_tokens(template), 0, ())
    out: list[str] = []
    _run(nodes, data, {"$": data}, out)
    return "".join(out)
