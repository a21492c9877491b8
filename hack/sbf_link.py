#!/usr/bin/env python3
"""Link a clang `-target bpf` object into a Solana SBPFv0 program (.so).

Upstream lld cannot: it rejects R_BPF_64_32 relocations (Solana's lld fork handles them).
This writes the shared object the SBPFv0 loader reads: `.text`, and for every syscall
call site a R_BPF_64_32 dynamic relocation against the syscall's name (`.rel.dyn`,
`.dynsym`, `.dynstr`, `.dynamic`); the loader puts the murmur3 hash of the name in the
call. Deliberately small: the object may have only `.text` (no static data, no
relocations other than syscalls, every function inlined), which contracts/solana/*.c
keep to. Anything else is refused with a clear message. Sections sit at virtual address
== file offset.

    hack/sbf_link.py prog.o prog.so
"""

from __future__ import annotations

import struct
import sys

R_BPF_64_32 = 10
EM_BPF = 247
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_DYNAMIC, SHT_DYNSYM, SHT_NOBITS = (
    1, 2, 3, 9, 6, 11, 8,
)  # fmt: skip
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_REL, DT_RELSZ, DT_RELENT = (
    0, 5, 6, 10, 11, 17, 18, 19,
)  # fmt: skip


class LinkError(Exception):
    pass


def _cstr(blob: bytes, offset: int) -> str:
    return blob[offset : blob.index(b"\0", offset)].decode()


def _align(value: int, to: int = 8) -> int:
    return (value + to - 1) // to * to


def link(obj: bytes, entry: str = "entrypoint") -> bytes:
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or struct.unpack_from("<H", obj, 18)[0] != EM_BPF:
        raise LinkError("not a 64-bit BPF ELF object")
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    names = [_cstr(obj, names_at + s[0]) for s in sections]
    text_index = names.index(".text")
    text = obj[sections[text_index][4] : sections[text_index][4] + sections[text_index][5]]
    for name, s in zip(names, sections, strict=True):
        kind, size = s[1], s[5]
        if (
            kind in (SHT_PROGBITS, SHT_NOBITS)
            and size
            and name.startswith((".rodata", ".data", ".bss"))
        ):
            raise LinkError(f"section {name}: static data is not supported (keep to .text)")
        if kind == SHT_PROGBITS and size and name.startswith(".text") and name != ".text":
            raise LinkError(f"section {name}: only one .text section is supported")
    symtab = next(s for s in sections if s[1] == SHT_SYMTAB)
    strtab_at = sections[symtab[6]][4]
    symbols = []
    for at in range(symtab[4], symtab[4] + symtab[5], 24):
        st_name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", obj, at)
        symbols.append((_cstr(obj, strtab_at + st_name), shndx, value))
    entries = [v for n, shndx, v in symbols if n == entry and shndx == text_index]
    if not entries:
        raise LinkError(f"no {entry} in .text")
    calls: list[tuple[int, str]] = []
    for name, s in zip(names, sections, strict=True):
        if s[1] != SHT_REL or not s[5]:
            continue
        if s[7] != text_index:
            raise LinkError(f"{name}: relocations outside .text are not supported")
        for at in range(s[4], s[4] + s[5], 16):
            offset, info = struct.unpack_from("<QQ", obj, at)
            kind, sym = info & 0xFFFFFFFF, info >> 32
            sym_name, shndx, _ = symbols[sym]
            if kind != R_BPF_64_32 or shndx != 0:
                raise LinkError(
                    f"relocation type {kind} against {sym_name or 'a section'}: only syscalls "
                    "(calls to undefined functions) are supported; inline every function"
                )
            calls.append((offset, sym_name))
    return _shared_object(text, entries[0], calls)


def _shared_object(text: bytes, entry: int, calls: list[tuple[int, str]]) -> bytes:
    syscalls = sorted({name for _, name in calls})
    dynstr = b"\0"
    name_at = {}
    for name in syscalls:
        name_at[name] = len(dynstr)
        dynstr += name.encode() + b"\0"
    dynsym = b"\0" * 24 + b"".join(
        struct.pack("<IBBHQQ", name_at[n], 0x10, 0, 0, 0, 0)
        for n in syscalls  # GLOBAL, UND
    )
    shstr = b"\0"
    sh_name = {}
    for name in (".text", ".dynsym", ".dynstr", ".rel.dyn", ".dynamic", ".shstrtab"):
        sh_name[name] = len(shstr)
        shstr += name.encode() + b"\0"
    ehdr_size, phdr_size, n_phdrs = 64, 56, 2
    text_at = _align(ehdr_size + phdr_size * n_phdrs)
    dynsym_at = _align(text_at + len(text))
    dynstr_at = _align(dynsym_at + len(dynsym))
    rel = b"".join(
        struct.pack("<QQ", text_at + offset, ((syscalls.index(n) + 1) << 32) | R_BPF_64_32)
        for offset, n in calls
    )
    rel_at = _align(dynstr_at + len(dynstr))
    dynamic_at = _align(rel_at + len(rel))
    dynamic = b"".join(
        struct.pack("<qQ", tag, value)
        for tag, value in (
            (DT_REL, rel_at),
            (DT_RELSZ, len(rel)),
            (DT_RELENT, 16),
            (DT_SYMTAB, dynsym_at),
            (DT_SYMENT, 24),
            (DT_STRTAB, dynstr_at),
            (DT_STRSZ, len(dynstr)),
            (DT_NULL, 0),
        )
    )
    shstr_at = _align(dynamic_at + len(dynamic))
    shdrs_at = _align(shstr_at + len(shstr))

    def section(name: str, kind: int, flags: int, at: int, size: int, link: int = 0,
                info: int = 0, align: int = 8, entsize: int = 0) -> bytes:  # fmt: skip
        address = at if flags else 0
        return struct.pack(
            "<IIQQQQIIQQ", sh_name[name], kind, flags, address, at, size, link, info, align, entsize
        )

    shdrs = [
        b"\0" * 64,
        section(".text", SHT_PROGBITS, 6, text_at, len(text)),  # ALLOC | EXECINSTR
        section(".dynsym", SHT_DYNSYM, 2, dynsym_at, len(dynsym), 3, 1, 8, 24),
        section(".dynstr", SHT_STRTAB, 2, dynstr_at, len(dynstr), align=1),
        section(".rel.dyn", SHT_REL, 2, rel_at, len(rel), 2, 0, 8, 16),
        section(".dynamic", SHT_DYNAMIC, 3, dynamic_at, len(dynamic), 3, 0, 8, 16),
        section(".shstrtab", SHT_STRTAB, 0, shstr_at, len(shstr), align=1),
    ]
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack(
        "<HHIQQQIHHHHHH", 3, EM_BPF, 1, text_at + entry, ehdr_size, shdrs_at, 0,
        ehdr_size, phdr_size, n_phdrs, 64, len(shdrs), len(shdrs) - 1,
    )  # fmt: skip
    loaded = dynamic_at + len(dynamic)
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, loaded, loaded, 8)  # PT_LOAD R+X
    phdrs += struct.pack(
        "<IIQQQQQQ", 2, 6, dynamic_at, dynamic_at, dynamic_at, len(dynamic), len(dynamic), 8
    )  # PT_DYNAMIC
    image = bytearray(shdrs_at + 64 * len(shdrs))
    for at, blob in (
        (0, ehdr),
        (ehdr_size, phdrs),
        (text_at, text),
        (dynsym_at, dynsym),
        (dynstr_at, dynstr),
        (rel_at, rel),
        (dynamic_at, dynamic),
        (shstr_at, shstr),
        (shdrs_at, b"".join(shdrs)),
    ):
        image[at : at + len(blob)] = blob
    return bytes(image)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as source:
            image = link(source.read())
    except LinkError as error:
        print(f"sbf_link: {argv[1]}: {error}", file=sys.stderr)
        return 1
    with open(argv[2], "wb") as out:
        out.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
