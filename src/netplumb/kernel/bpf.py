"""The bpf(2) system call, for the few commands netplumb uses: maps, loading a program,
attaching it to a cgroup or to a link's tc ingress (tcx), finding it again by id.

Through ``ctypes`` (~1.5 ms to import here), imported only by what changes published ports
(``kernel/socklb.py``, ``kernel/lanlb.py``). Each ``attr`` is a zeroed
128-byte buffer: the kernel requires every byte past the fields it knows to be zero.
"""

from __future__ import annotations

import ctypes
import struct

from netplumb.errors import KernelError

_NR_BPF = 321  # x86_64
_ATTR = 128
# commands (enum bpf_cmd)
MAP_CREATE, MAP_LOOKUP, MAP_UPDATE, MAP_DELETE, MAP_NEXT_KEY = 0, 1, 2, 3, 4
PROG_LOAD, PROG_ATTACH, PROG_DETACH = 5, 8, 9
PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD, PROG_QUERY = 13, 14, 15, 16
# map types, program types, attach types, flags
MAP_HASH, MAP_LRU_HASH = 1, 9
PROG_SCHED_CLS, PROG_CGROUP_SOCK_ADDR = 3, 18
CGROUP_INET4_CONNECT, CGROUP_INET4_GETPEERNAME, TCX_INGRESS = 10, 29, 46
F_NO_PREALLOC = 1
F_ALLOW_MULTI = 2
ENOENT = 2

_libc: ctypes.CDLL | None = None


def lock_file(path: str) -> int:
    """An fd of ``path`` (made, with its directory, if need be) holding an exclusive ``flock``:
    what serialises the netplumbs changing one kind of BPF state. Closing it unlocks."""
    import posix
    from fcntl import LOCK_EX, flock

    try:
        posix.mkdir(path.rsplit("/", 1)[0], 0o755)
    except FileExistsError:
        pass
    fd = posix.open(path, posix.O_RDWR | posix.O_CREAT, 0o600)
    flock(fd, LOCK_EX)
    return fd


def _syscall(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    global _libc  # noqa: PLW0603 -- loaded once per process
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ret = int(_libc.syscall(_NR_BPF, cmd, attr, _ATTR))
    if ret < 0:
        raise KernelError(what, ctypes.get_errno())
    return ret


def _attr(fmt: str, *values: object) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(struct.pack(fmt, *values), _ATTR)


def _name(name: str) -> bytes:
    return name.encode()[:15]


def map_create(
    kind: int, key_size: int, value_size: int, entries: int, flags: int, name: str
) -> int:
    attr = _attr("<IIIIIII16s", kind, key_size, value_size, entries, flags, 0, 0, _name(name))
    return _syscall(MAP_CREATE, attr, f"create BPF map {name}")


def prog_load(insns: bytes, attach_type: int, name: str, kind: int = PROG_CGROUP_SOCK_ADDR) -> int:
    """A program of type ``kind`` (a ``cgroup/sock_addr`` one by default) for
    ``attach_type``; its fd. The verifier's log is in the error when the kernel refuses it."""
    code = ctypes.create_string_buffer(insns, len(insns))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(16384)
    attr = _attr(
        "<IIQQIIQII16sII",
        kind,
        len(insns) // 8,
        ctypes.addressof(code),
        ctypes.addressof(license),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        _name(name),
        0,
        attach_type,
    )
    try:
        return _syscall(PROG_LOAD, attr, f"load BPF program {name}")
    except KernelError as exc:
        tail = log.value.decode(errors="replace").strip().splitlines()[-3:]
        if tail:
            raise KernelError(f"load BPF program {name} ({' | '.join(tail)})", exc.errno) from None
        raise


def prog_attach(target: int, prog_fd: int, attach_type: int) -> None:
    """Attach to a cgroup (``target`` its fd; with others: ``BPF_F_ALLOW_MULTI``) or, for
    ``TCX_INGRESS``, to a link (``target`` its ifindex; after the programs there). The program
    stays attached when this process exits."""
    flags = 0 if attach_type == TCX_INGRESS else F_ALLOW_MULTI
    attr = _attr("<IIII", target, prog_fd, attach_type, flags)
    _syscall(PROG_ATTACH, attr, f"attach BPF program to {_target(attach_type)}")


def prog_detach(target: int, prog_fd: int, attach_type: int) -> None:
    attr = _attr("<III", target, prog_fd, attach_type)
    _syscall(PROG_DETACH, attr, f"detach BPF program from {_target(attach_type)}")


def _target(attach_type: int) -> str:
    return "the link" if attach_type == TCX_INGRESS else "the cgroup"


def prog_query(target: int, attach_type: int) -> list[int]:
    """The ids of the programs attached to the cgroup itself (``target`` its fd) or to the link
    (``TCX_INGRESS``: ``target`` its ifindex) for ``attach_type``."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _attr("<IIIIQI", target, attach_type, 0, 0, ctypes.addressof(ids), len(ids))
    _syscall(PROG_QUERY, attr, f"list the BPF programs of {_target(attach_type)}")
    count = struct.unpack_from("<I", attr.raw, 24)[0]
    return list(ids[: min(count, len(ids))])


def prog_fd(prog_id: int) -> int:
    return _syscall(PROG_GET_FD_BY_ID, _attr("<I", prog_id), "open BPF program by id")


def map_fd(map_id: int) -> int:
    return _syscall(MAP_GET_FD_BY_ID, _attr("<I", map_id), "open BPF map by id")


def prog_info(fd: int) -> tuple[str, list[int]]:
    """A program's name and the ids of the maps it uses."""
    map_ids = (ctypes.c_uint32 * 8)()
    info = ctypes.create_string_buffer(256)
    struct.pack_into("<IQ", info, 52, len(map_ids), ctypes.addressof(map_ids))
    attr = _attr("<IIQ", fd, len(info), ctypes.addressof(info))
    _syscall(OBJ_GET_INFO_BY_FD, attr, "read BPF program info")
    count = struct.unpack_from("<I", info.raw, 52)[0]
    name = info.raw[64:80].split(b"\0", 1)[0].decode()
    return name, list(map_ids[: min(count, len(map_ids))])


def map_name(fd: int) -> str:
    info = ctypes.create_string_buffer(128)
    attr = _attr("<IIQ", fd, len(info), ctypes.addressof(info))
    _syscall(OBJ_GET_INFO_BY_FD, attr, "read BPF map info")
    return info.raw[24:40].split(b"\0", 1)[0].decode()


def _elem(cmd: int, fd: int, key: bytes, value: bytes | None, what: str) -> int:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value)) if value is not None else None
    attr = _attr("<IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v) if v else 0, 0)
    return _syscall(cmd, attr, what)


def map_update(fd: int, key: bytes, value: bytes) -> None:
    _elem(MAP_UPDATE, fd, key, value, "write a BPF map element")


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; one that is not there is fine. Returns whether it was there."""
    try:
        _elem(MAP_DELETE, fd, key, None, "delete a BPF map element")
    except KernelError as exc:
        if exc.errno != ENOENT:
            raise
        return False
    return True


def _next_key(fd: int, key: int, nxt: int) -> bool:
    """``GET_NEXT_KEY``: the key after the one at address ``key`` (0: the first) into ``nxt``;
    False at the end."""
    try:
        _syscall(MAP_NEXT_KEY, _attr("<IIQQ", fd, 0, key, nxt), "list a BPF map")
    except KernelError as exc:
        if exc.errno == ENOENT:
            return False
        raise
    return True


def map_empty(fd: int, key_size: int) -> bool:
    """Whether the map has no element (one ``GET_NEXT_KEY`` from the start, not a listing)."""
    nxt = ctypes.create_string_buffer(key_size)  # held: the kernel writes the key there
    return not _next_key(fd, 0, ctypes.addressof(nxt))


def map_items(fd: int, key_size: int, value_size: int) -> dict[bytes, bytes]:
    """Every element of a (small) hash map."""
    items: dict[bytes, bytes] = {}
    key = ctypes.create_string_buffer(key_size)
    nxt = ctypes.create_string_buffer(key_size)
    val = ctypes.create_string_buffer(value_size)
    first = True
    while _next_key(fd, 0 if first else ctypes.addressof(key), ctypes.addressof(nxt)):
        first = False
        ctypes.memmove(key, nxt, key_size)
        lookup = _attr("<IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0)
        try:
            _syscall(MAP_LOOKUP, lookup, "read a BPF map element")
        except KernelError as exc:
            if exc.errno == ENOENT:  # deleted meanwhile
                continue
            raise
        items[key.raw] = val.raw
    return items
