"""netplumb's modules for a plain plugin process, from one file written by ``cni install``.

A plain ADD spends more time importing (~45 modules) than working. The ordinary importer looks
each module up along ``sys.path``, opens and reads its ``.pyc`` and checks it; this finder keeps
every netplumb module's code in one file beside the plugin (``netplumb-cni.modules``) and reads
only those imported, one ``pread`` each.

The file starts itself: its first part is this module's own code, which the launcher reads and
runs with nothing but ``posix`` and ``marshal`` (``boot_lines``), so not even ``netplumb`` or
this module is looked up along ``sys.path`` (~0.6 ms). It also names the few standard-library
modules ADD and DEL import that Python neither builds in nor freezes (``STDLIB``): the first of
them would otherwise set up the lookup of the whole standard library directory (~0.3 ms).
Nothing here imports ``os`` at module level: in a plugin process ``os`` costs ~1 ms.

A module is taken from the file only while its source (or, for an extension module, its shared
object) is the one recorded (size and mtime, as a ``.pyc`` is checked): after an upgrade the
changed modules come from their sources as usual, so the file is never wrong, only slower until
the next install. Code marshalled by another Python version is never run: the header names the
version (``sys.implementation.cache_tag``), and the launcher skips a file made for another.
"""

# no ``from __future__ import annotations``: the boot runs before the finder serves
# ``__future__`` (the annotations that name TYPE_CHECKING imports are strings instead)
import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import CodeType, ModuleType
    from typing import Any

SUFFIX = ".modules"
MAGIC = b"NPMOD2\n"
TAG_SIZE = 16
HEAD = len(MAGIC) + TAG_SIZE + 4  # magic, Python's cache tag, the boot code's length
# imported on ADD's or DEL's path and neither built in nor frozen in Python 3.11 (a test keeps
# this list true: tests/unit/test_cni_modules.py)
STDLIB = ("__future__", "struct", "_json", "_ctypes")

# index entry: offset, length (-1: an extension module, loaded from its path), package or not,
# source path, its mtime and size
Entry = tuple[int, int, bool, str, int, int]


def _tag() -> bytes:
    return str(sys.implementation.cache_tag).encode().ljust(TAG_SIZE)[:TAG_SIZE]


def _compile(path: str) -> bytes:
    with open(path, "rb") as f:
        source = f.read()
    return marshal.dumps(compile(source, path, "exec", dont_inherit=True))


def pack(package_dir: str, stdlib: "Sequence[str]" = STDLIB) -> bytes:
    """The file's bytes for the netplumb package at ``package_dir`` and the standard library's
    ``stdlib`` modules: the header, this module's code (the boot), the index (module name ->
    entry) and each module's marshalled code."""
    import importlib.util
    import os

    index: dict[str, Entry] = {}
    blobs: list[bytes] = []
    offset = 0

    def add(name: str, path: str, is_pkg: bool, code: bytes | None) -> None:
        nonlocal offset
        st = os.stat(path)
        length = -1 if code is None else len(code)
        index[name] = (offset, length, is_pkg, path, st.st_mtime_ns, st.st_size)
        if code is not None:
            blobs.append(code)
            offset += len(code)

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
            add(mod, path, is_pkg, _compile(path))
    for name in stdlib:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not os.path.isfile(origin):
            continue  # built in or frozen on this Python: nothing to look up
        add(name, origin, False, _compile(origin) if origin.endswith(".py") else None)
    boot = _compile(os.path.abspath(__file__))
    head = marshal.dumps(index)
    return b"".join(
        [
            MAGIC,
            _tag(),
            len(boot).to_bytes(4, "little"),
            boot,
            len(head).to_bytes(4, "little"),
            head,
            *blobs,
        ]
    )


def boot_lines(path: str) -> list[str]:
    """The launcher's lines that start the file at ``path``: they check its header (this
    netplumb's file, for this Python), run its boot code as this module and ``activate`` it.
    Anything wrong leaves the ordinary importer, as if there were no file."""
    want = MAGIC + _tag()
    return [
        "import marshal, posix",
        "try:",
        f"    _fd = posix.open({path!r}, posix.O_RDONLY | posix.O_CLOEXEC)",
        f"    _h = posix.pread(_fd, {HEAD}, 0)",
        f"    if _h[:-4] == {want!r}:",
        "        _m = type(sys)('netplumb.cni.modules')",
        f"        exec(marshal.loads(posix.pread(_fd, int.from_bytes(_h[-4:], 'little'), {HEAD})),"
        " _m.__dict__)",
        f"        _m.activate_fd(_fd, {path!r})",
        "except Exception:",
        "    pass",
    ]


class Finder:
    """A ``sys.meta_path`` finder and loader for the modules in the file (see the docstring)."""

    def __init__(self, fd: int, path: str) -> None:
        head = posix.pread(fd, HEAD, 0)
        if head[: len(MAGIC)] != MAGIC or head[len(MAGIC) : -4] != _tag():
            raise ValueError(f"{path}: not a netplumb modules file for this Python")
        at = HEAD + int.from_bytes(head[-4:], "little")
        size = int.from_bytes(posix.pread(fd, 4, at), "little")
        self.fd = fd
        self.base = at + 4 + size
        self.index: dict[str, Entry] = marshal.loads(posix.pread(fd, size, at + 4))

    def find_spec(
        self,
        name: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "Any":
        entry = self.index.get(name)
        if entry is None:
            return None
        _off, length, is_pkg, source, mtime, size = entry
        try:
            st = posix.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime or st.st_size != size:
            return None  # changed since ``cni install``: the ordinary importer takes it
        bootstrap = sys.modules["_frozen_importlib"]
        if length < 0:
            loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, source)
            spec = bootstrap.ModuleSpec(name, loader, origin=source)
            spec.has_location = True  # ``__file__``, as the ordinary importer sets it
            return spec
        # no ``has_location``: the importer would compute a ``__cached__`` path per module;
        # ``exec_module`` sets ``__file__``
        spec = bootstrap.ModuleSpec(name, self, origin=source, is_package=is_pkg)
        if is_pkg:
            spec.submodule_search_locations = [source.rpartition("/")[0]]
        return spec

    def create_module(self, spec: "Any") -> None:
        return None

    def exec_module(self, module: "ModuleType") -> None:
        offset, length, _pkg, source, _mtime, _size = self.index[module.__name__]
        code: CodeType = marshal.loads(posix.pread(self.fd, length, self.base + offset))
        module.__file__ = source
        exec(code, module.__dict__)


def activate_fd(fd: int, path: str) -> None:
    """Serve modules from the open file ``fd`` (``path``, for messages) unless it is not one."""
    try:
        finder = Finder(fd, path)
    except (OSError, ValueError, EOFError, TypeError):
        posix.close(fd)
        return
    sys.meta_path.insert(0, finder)


def activate(path: str) -> None:
    """Serve modules from the file ``path`` if it is there and readable (tests; the launcher
    starts the file with ``boot_lines`` instead)."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    activate_fd(fd, path)
