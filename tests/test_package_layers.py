"""The package's folders are its layers: no import reaches a higher layer, no import circle, small modules."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parent.parent / "persam_video"

#: lowest first; a module may import its own layer and the ones before it, never a later one
LAYERS = [
    {"errors", "options"},
    {"io"},
    {"runtime"},
    {"model"},
    {"persam"},
    {"tracking"},
    {"resume_file", "pipeline", "demo_clip"},
    {"export", "batch", "davis", "perseg", "photos"},
    {"ui", "cli", "__main__", ""},  # "": the package's __init__ (the public API)
]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Set[str]:
    """The package's modules that module ``name`` imports, anywhere in it (functions included)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "persam_video" or node.module.startswith("persam_video.")):
                target = node.module[len("persam_video."):] if "." in node.module else ""
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("persam_video."):
                    found.add(alias.name[len("persam_video."):])
    found.discard(name)
    return found


def layer(name: str) -> int:
    top = name.split(".")[0]
    for rank, members in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"module persam_video.{name} is in no layer: add its folder to LAYERS")


def test_every_module_is_in_a_layer_and_imports_none_above_it():
    upward = [f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
              for name in MODULES for dep in sorted(imports(name)) if layer(dep) > layer(name)]
    assert upward == []


def cycles(graph: Dict[str, List[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return found


def test_no_import_circle():
    assert cycles({name: sorted(imports(name) & set(MODULES)) for name in MODULES}) == []


def test_the_checks_see_arrows_and_circles():
    assert {"resume_file", "tracking.session", "runtime.system"} <= imports("pipeline")
    assert "persam" in imports("tracking.segmenter")  # ``from .. import persam``
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert layer("tracking.segmenter") > layer("persam.decoding") > layer("model.predictor")


#: what the segmenter calls: none of these may take the segmenter (or the session above it) and call it back
CALLED_BY_THE_SEGMENTER = ("io", "model", "persam", "tracking.seeding", "tracking.decode_objects", "tracking.follow",
                           "tracking.target_memory", "tracking.motion", "tracking.object_state")
CALLERS = {"segmenter", "session", "VideoSegmenter", "VideoSession"}


def back_calls(name: str) -> List[str]:
    """Where module ``name`` receives a caller: a parameter named or annotated as the segmenter or the
    session, or a ``Protocol`` (the shape a caller is handed down under without being imported)."""
    found = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                words = {arg.arg} | ({n.id for n in ast.walk(arg.annotation) if isinstance(n, ast.Name)} |
                                     {n.value for n in ast.walk(arg.annotation) if isinstance(n, ast.Constant)}
                                     if arg.annotation is not None else set())
                if words & CALLERS:
                    found.append(f"{name}:{node.name}({arg.arg})")
        elif isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases):
            found.append(f"{name}:{node.name}(Protocol)")
    return found


def test_what_the_segmenter_calls_never_calls_it_back():
    below = [name for name in MODULES if name.startswith(CALLED_BY_THE_SEGMENTER)]
    assert "tracking.seeding" in below and "persam.decoding" in below
    assert [hit for name in below for hit in back_calls(name)] == []
    assert not {"tracking.segmenter", "tracking.session"} & {dep for name in below for dep in imports(name)}


def test_the_back_call_check_sees_one(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import Protocol\nclass Encoder(Protocol): ...\n"
                   "def seed(segmenter, views): segmenter.decode(views)\n"
                   "def fit(x: 'VideoSegmenter'): ...\n")
    monkeypatch.setitem(MODULES, "tracking.bad", bad)
    assert back_calls("tracking.bad") == ["tracking.bad:Encoder(Protocol)", "tracking.bad:seed(segmenter)",
                                          "tracking.bad:fit(x)"]


def test_no_module_is_long():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_design_lists_every_module():
    listed = (PACKAGE.parent / "docs" / "design.md").read_text()
    missing = [f"persam_video/{path.relative_to(PACKAGE).as_posix()}" for path in MODULES.values()
               if f"persam_video/{path.relative_to(PACKAGE).as_posix()}" not in listed]
    assert missing == []
