"""netplumb's modules for a plain plugin process, from one file written by ``cni install``.

A plain ADD spends more time importing (~8 ms, ~45 modules) than working (~2 ms). The
ordinary importer looks each module up along ``sys.path``, opens and reads its ``.pyc`` and
checks it; this finder keeps every netplumb module's code in one file beside the plugin
(``netplumb-cni.modules``) and reads only those imported, one ``pread`` each.

A module is taken from the file only while its source is the one it was compiled from (size
and mtime, as a ``.pyc`` is checked): after an upgrade of netplumb the changed modules come
from their sources as usual, so the file is never wrong, only slower until the next install.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import CodeType, ModuleType
    from typing import Any

SUFFIX = ".modules"
MAGIC = b"NPMOD1\n"


def pack(package_dir: str) -> bytes:
    """The file's bytes for the netplumb package at ``package_dir``: a header (the index:
    module name -> offset, length, package or not, source path, its mtime and size), then
    each module's marshalled code."""
    index: dict[str, tuple[int, int, bool, str, int, int]] = {}
    blobs: list[bytes] = []
    offset = 0
    top = os.path.dirname(package_dir)
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            mod = os.path.relpath(path, top)[: -len(".py")].replace(os.sep, ".")
            is_pkg = name == "__init__.py"
            if is_pkg:
                mod = mod[: -len(".__init__")]
            with open(path, "rb") as f:
                source = f.read()
            st = os.stat(path)
            code = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
            index[mod] = (offset, len(code), is_pkg, path, st.st_mtime_ns, st.st_size)
            blobs.append(code)
            offset += len(code)
    head = marshal.dumps(index)
    return MAGIC + len(head).to_bytes(4, "little") + head + b"".join(blobs)


class Finder:
    """A ``sys.meta_path`` finder and loader for the modules in the file (see the docstring)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        head = os.pread(self.fd, len(MAGIC) + 4, 0)
        if head[: len(MAGIC)] != MAGIC:
            os.close(self.fd)
            raise ValueError(f"{path}: not a netplumb modules file")
        size = int.from_bytes(head[len(MAGIC) :], "little")
        self.base = len(MAGIC) + 4 + size
        self.index: dict[str, tuple[int, int, bool, str, int, int]] = marshal.loads(
            os.pread(self.fd, size, len(MAGIC) + 4)
        )

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        entry = self.index.get(name)
        if entry is None:
            return None
        _off, _len, is_pkg, source, mtime, size = entry
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime or st.st_size != size:
            return None  # changed since ``cni install``: the ordinary importer takes it
        # no ``has_location``: the importer would compute a ``__cached__`` path per module;
        # ``exec_module`` sets ``__file__``
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            name, self, origin=source, is_package=is_pkg
        )
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        offset, length, _pkg, source, _mtime, _size = self.index[module.__name__]
        code: CodeType = marshal.loads(os.pread(self.fd, length, self.base + offset))
        module.__file__ = source
        exec(code, module.__dict__)


def activate(path: str) -> None:
    """Serve netplumb's modules from the file ``path`` if it is there and readable."""
    try:
        finder = Finder(path)
    except (OSError, ValueError, EOFError, TypeError):
        return
    sys.meta_path.insert(0, finder)
