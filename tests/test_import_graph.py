"""The package's plan: every import (top-level or inside a function) between
its rooms runs down a floor, so there is no circle and no arrow back up."""
import ast
import os
import os.path as osp

from .conftest import ROOT

# lowest first; a room may import only rooms on lower floors
FLOORS = [
    {'package_configs', 'compat'},
    {'utils'},
    {'models'},  # the math, the head, the backbone, the provenance format
    {'checkpointing'},
    {'checkpoint', 'fileio', 'takeovers'},  # aliases of checkpointing's first names
    {'datasets', 'visualization'},
    {'evaluation'},
    {'engine'},  # what prepares and runs a run
    {'explain', 'zoo'},  # case bases and the snap hook; the head zoo
    {'demo', 'tools'},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def imports_between_rooms():
    """(from room, to room, file) for every import of mmseg_dnc by mmseg_dnc."""
    package = osp.join(ROOT, 'mmseg_dnc')
    found = []
    for folder, _, files in os.walk(package):
        for name in files:
            if not name.endswith('.py') or folder == package and name == '__init__.py':
                continue
            path = osp.join(folder, name)
            module = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.').split('.')
            room = module[1]
            here = module[:-1] if name != '__init__.py' else module[:-1]
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = here[:len(here) - node.level + 1] if node.level else []
                    target = '.'.join(base + ([node.module] if node.module else []))
                    targets = [target] if node.module or not node.level else \
                        [f'{target}.{alias.name}' for alias in node.names]
                else:
                    continue
                for target in targets:
                    parts = target.split('.')
                    if parts[0] == 'mmseg_dnc' and len(parts) > 1 and parts[1] != room:
                        found.append((room, parts[1], osp.relpath(path, ROOT)))
    return found


def test_every_room_is_on_a_floor():
    rooms = {name[:-3] if name.endswith('.py') else name
             for name in os.listdir(osp.join(ROOT, 'mmseg_dnc'))
             if not name.startswith(('_', '.'))}
    assert rooms == set(FLOOR), 'add the new room to FLOORS (and to README\'s Layout)'


def test_imports_run_down_the_floors():
    edges = imports_between_rooms()
    assert edges  # the walk found the package's imports
    up = sorted({f'{path}: {src} -> {dst}' for src, dst, path in edges
                 if FLOOR[dst] >= FLOOR[src]})
    assert not up, 'imports that run back up (or across) a floor:\n' + '\n'.join(up)
