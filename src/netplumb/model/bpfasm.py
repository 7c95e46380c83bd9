"""BPF instructions as bytes (``struct bpf_insn``), for the programs netplumb writes itself
(``model/socklb.py``, ``model/lanlb.py``): a handful of opcodes, and a ``Program`` whose jumps
name labels, so that no offset is counted by hand.

Pure, and cheap to import: a publication loads it.
"""

from __future__ import annotations

from struct import pack

# opcodes (include/uapi/linux/bpf.h): class | size or operation | source
LDX8, LDX16, LDX32, LDX64 = 0x71, 0x69, 0x61, 0x79
STX16, STX32, STX64 = 0x6B, 0x63, 0x7B
ST8, ST16, ST32, ST64 = 0x72, 0x6A, 0x62, 0x7A  # store an immediate
MOV_IMM, MOV_REG, ADD_IMM, AND_IMM = 0xB7, 0xBF, 0x07, 0x57
JA, JEQ_IMM, JNE_IMM, JGT_REG = 0x05, 0x15, 0x55, 0x2D
CALL, EXIT = 0x85, 0x95
FP = 10  # the frame pointer
# helpers (enum bpf_func_id)
MAP_LOOKUP, MAP_UPDATE, MAP_DELETE = 1, 2, 3
SKB_STORE_BYTES, L3_CSUM_REPLACE, L4_CSUM_REPLACE, REDIRECT = 9, 10, 11, 23
SOCKET_COOKIE, FIB_LOOKUP, NETNS_COOKIE, REDIRECT_NEIGH, REDIRECT_PEER = 46, 69, 122, 152, 155


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov(dst: int, src: int) -> bytes:
    return ins(MOV_REG, dst, src)


def mov_imm(dst: int, imm: int) -> bytes:
    return ins(MOV_IMM, dst, imm=imm)


def ldx(size: int, dst: int, src: int, off: int) -> bytes:
    """``dst = *(uSIZE *)(src + off)``, ``size`` in bits."""
    return ins({8: LDX8, 16: LDX16, 32: LDX32, 64: LDX64}[size], dst, src, off)


def stx(size: int, dst: int, src: int, off: int) -> bytes:
    """``*(uSIZE *)(dst + off) = src``."""
    return ins({16: STX16, 32: STX32, 64: STX64}[size], dst, src, off)


def st(size: int, dst: int, off: int, imm: int) -> bytes:
    """``*(uSIZE *)(dst + off) = imm``."""
    return ins({8: ST8, 16: ST16, 32: ST32, 64: ST64}[size], dst, 0, off, imm)


def add(dst: int, imm: int) -> bytes:
    return ins(ADD_IMM, dst, imm=imm)


def call(helper: int) -> bytes:
    return ins(CALL, imm=helper)


def load_map(dst: int, fd: int) -> bytes:
    """``dst = map`` (a 16-byte load of the map's fd, which the verifier turns into the map)."""
    return ins(0x18, dst, 1, imm=fd) + ins(0)


def stack_ptr(dst: int, off: int) -> bytes:
    """``dst = fp + off``."""
    return mov(dst, FP) + add(dst, off)


def ret(imm: int) -> bytes:
    return mov_imm(0, imm) + ins(EXIT)


def join(*parts: bytes) -> bytes:
    return b"".join(parts)


class Program:
    """Instructions with labelled jumps: ``emit`` appends, ``jump`` jumps to a ``label`` placed
    before or after it, ``build`` gives the bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes | tuple[int, int, int, str]] = []
        self._labels: dict[str, int] = {}
        self._slots = 0

    def emit(self, *code: bytes) -> None:
        for c in code:
            self._parts.append(c)
            self._slots += len(c) // 8

    def jump(self, op: int, label: str, dst: int = 0, imm: int = 0, src: int = 0) -> None:
        """``if (dst OP imm|src) goto label`` (``JA``: always)."""
        self._parts.append((op, dst, src if op & 0x08 else imm, label))
        self._slots += 1

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name} placed twice")
        self._labels[name] = self._slots

    def build(self) -> bytes:
        out: list[bytes] = []
        pc = 0
        for part in self._parts:
            if isinstance(part, bytes):
                out.append(part)
                pc += len(part) // 8
                continue
            op, dst, other, name = part
            off = self._labels[name] - (pc + 1)
            if op & 0x08:
                out.append(ins(op, dst, other, off))
            else:
                out.append(ins(op, dst, 0, off, other))
            pc += 1
        return b"".join(out)
