#!/usr/bin/env python3
"""Prelink a position-independent executable: rewrite an x86-64 PIE
(ET_DYN with an interpreter) into a position-dependent ET_EXEC loaded at
BASE, with its R_X86_64_RELATIVE relocations applied now, at build time.

Why: Debian builds dockerd and the docker CLI as PIE. dockerd carries
244,107 relative relocations spread over a 24 MB .data.rel.ro; at every
start the dynamic loader writes all of them, so each dockerd (system and
user engine) copies ~24 MB of the binary into private memory and, under
QEMU's TCG, spends seconds on it. Applied here, those pages stay clean
file pages shared with the page cache, and the loader has ~100 symbol
relocations left to do. The price is ASLR for these binaries.

    build/prelink.py IN OUT [BASE]      (BASE default 0x400000)

Refuses (exit 1, naming the reason) anything it does not fully
understand: another machine or class, RELR, REL, relocation types other
than the ones listed below (KEEP). Prints what it did on one line.
"""
import struct
import sys

ET_DYN, ET_EXEC = 3, 2
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_GNU_STACK = 1, 2, 3, 0x6474E551
SHF_ALLOC = 2
SHT_DYNSYM, SHT_SYMTAB = 11, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
STT_TLS = 6
DF_1_PIE = 0x08000000
R_64, R_GLOB_DAT, R_JUMP_SLOT, R_RELATIVE = 1, 6, 7, 8
R_COPY, R_DTPMOD64, R_DTPOFF64, R_TPOFF64, R_IRELATIVE = 5, 16, 17, 18, 37
KEEP = {R_64, R_COPY, R_GLOB_DAT, R_JUMP_SLOT, R_DTPMOD64, R_DTPOFF64, R_TPOFF64, R_IRELATIVE}
# dynamic tags whose value is an address in the image
DT_ADDR = {3, 4, 5, 6, 7, 12, 13, 23, 25, 26, 32, 0x6FFFFEF5, 0x6FFFFEF6, 0x6FFFFEF7,
           0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFE}
DT_NULL, DT_PLTRELSZ, DT_PLTGOT, DT_RELA, DT_RELASZ, DT_RELAENT = 0, 2, 3, 7, 8, 9
DT_REL, DT_PLTREL, DT_JMPREL, DT_RELR, DT_RELACOUNT, DT_FLAGS_1 = 17, 20, 23, 36, 0x6FFFFFF9, 0x6FFFFFFB


class Refuse(Exception):
    pass


def prelink(data, base):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise Refuse("not a 64-bit little-endian ELF file")
    (e_type, e_machine, _v, e_entry, e_phoff, e_shoff, _f, _eh, e_phentsize, e_phnum,
     e_shentsize, e_shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_machine != 62:
        raise Refuse("not x86-64")
    if e_type != ET_DYN:
        raise Refuse("not position-independent (ELF type %d)" % e_type)
    phdrs = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        phdrs.append((off,) + struct.unpack_from("<IIQQQQQQ", data, off))
    if not any(p[1] == PT_INTERP for p in phdrs):
        raise Refuse("no interpreter: a shared library or a static-pie, not a PIE executable")
    loads = [p for p in phdrs if p[1] == PT_LOAD]
    align = max(p[8] for p in loads)
    if base % align or base % 4096:
        raise Refuse("base %#x is not a multiple of the segment alignment %#x" % (base, align))

    def at(vaddr, size=8):
        for _o, _t, _fl, p_offset, p_vaddr, _pa, p_filesz, _ms, _al in loads:
            if p_vaddr <= vaddr and vaddr + size <= p_vaddr + p_filesz:
                return p_offset + vaddr - p_vaddr
        raise Refuse("address %#x is not in a loaded part of the file" % vaddr)

    dyn = [p for p in phdrs if p[1] == PT_DYNAMIC]
    if len(dyn) != 1:
        raise Refuse("expected one PT_DYNAMIC")
    dyn_off, dyn_vaddr = dyn[0][3], dyn[0][4]
    entries = []
    i = 0
    while True:
        tag, val = struct.unpack_from("<qQ", data, dyn_off + 16 * i)
        entries.append((dyn_off + 16 * i, tag, val))
        i += 1
        if tag == DT_NULL:
            break
    tags = {t: v for _o, t, v in entries}
    if DT_REL in tags or DT_RELR in tags:
        raise Refuse("REL or RELR relocations (only RELA is handled)")
    if DT_JMPREL in tags and tags.get(DT_PLTREL) != DT_RELA:
        raise Refuse("PLT relocations are not RELA")
    if tags.get(DT_RELAENT, 24) != 24:
        raise Refuse("unexpected RELA entry size")

    # symbols defined here move with the image (TLS ones are offsets)
    moved_syms = 0
    for i in range(e_shnum):
        sh = e_shoff + i * e_shentsize
        _n, sh_type, sh_flags, sh_addr, sh_offset, sh_size, _l, _in, _a, sh_entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, sh)
        if sh_type in (SHT_DYNSYM, SHT_SYMTAB) and sh_entsize == 24:
            for s in range(sh_offset + 24, sh_offset + sh_size, 24):
                _nm, info, _ot, shndx, value, _sz = struct.unpack_from("<IBBHQQ", data, s)
                if shndx not in (SHN_UNDEF, SHN_ABS) and info & 0xF != STT_TLS:
                    struct.pack_into("<Q", data, s + 8, value + base)
                    moved_syms += 1
        if sh_flags & SHF_ALLOC:
            struct.pack_into("<Q", data, sh + 16, sh_addr + base)

    applied = kept = 0

    def relocs(addr_tag, size_tag):
        if addr_tag not in tags:
            return None, []
        off = at(tags[addr_tag], max(tags.get(size_tag, 0), 8))
        return off, [struct.unpack_from("<QQq", data, off + 24 * k) for k in range(tags[size_tag] // 24)]

    rela_off, rela = relocs(DT_RELA, DT_RELASZ)
    plt_off, plt = relocs(DT_JMPREL, DT_PLTRELSZ)
    if rela_off is not None and plt_off is not None and rela_off <= plt_off < rela_off + 24 * len(rela):
        raise Refuse("DT_RELASZ covers the PLT relocations (not handled)")
    out = []
    for r_offset, r_info, r_addend in rela:
        kind = r_info & 0xFFFFFFFF
        if kind == R_RELATIVE:
            struct.pack_into("<Q", data, at(r_offset), (base + r_addend) & 0xFFFFFFFFFFFFFFFF)
            applied += 1
        elif kind in KEEP:
            addend = r_addend + base if kind == R_IRELATIVE else r_addend
            out.append((r_offset + base, r_info, addend))
        else:
            raise Refuse("relocation type %d at %#x" % (kind, r_offset))
    for k, (r_offset, r_info, r_addend) in enumerate(plt):
        kind = r_info & 0xFFFFFFFF
        if kind not in (R_JUMP_SLOT, R_IRELATIVE):
            raise Refuse("PLT relocation type %d at %#x" % (kind, r_offset))
        slot = at(r_offset)
        (cur,) = struct.unpack_from("<Q", data, slot)
        if cur:  # lazy binding's initial value: the PLT stub's address
            struct.pack_into("<Q", data, slot, cur + base)
        addend = r_addend + base if kind == R_IRELATIVE else r_addend
        struct.pack_into("<QQq", data, plt_off + 24 * k, r_offset + base, r_info, addend)
        kept += 1
    if rela_off is not None:
        for k, r in enumerate(out):
            struct.pack_into("<QQq", data, rela_off + 24 * k, *r)
        for k in range(len(out), len(rela)):
            struct.pack_into("<QQq", data, rela_off + 24 * k, 0, 0, 0)
        kept += len(out)
    if DT_PLTGOT in tags:  # GOT[0]: the link-time address of _DYNAMIC
        got = at(tags[DT_PLTGOT])
        (g0,) = struct.unpack_from("<Q", data, got)
        if g0 == dyn_vaddr:
            struct.pack_into("<Q", data, got, g0 + base)

    for off, tag, val in entries:
        if tag in DT_ADDR and val:
            struct.pack_into("<Q", data, off + 8, val + base)
        elif tag == DT_RELASZ:
            struct.pack_into("<Q", data, off + 8, 24 * len(out))
        elif tag == DT_RELACOUNT:
            struct.pack_into("<Q", data, off + 8, 0)
        elif tag == DT_FLAGS_1:
            struct.pack_into("<Q", data, off + 8, val & ~DF_1_PIE)

    for off, p_type, _fl, _po, p_vaddr, p_paddr, _fs, _ms, _al in phdrs:
        if p_type != PT_GNU_STACK:
            struct.pack_into("<QQ", data, off + 16, p_vaddr + base, p_paddr + base)
    struct.pack_into("<HHIQ", data, 16, ET_EXEC, e_machine, 1, e_entry + base)
    return applied, kept, moved_syms


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: prelink.py IN OUT [BASE]", file=sys.stderr)
        return 2
    base = int(argv[3], 0) if len(argv) == 4 else 0x400000
    with open(argv[1], "rb") as f:
        data = bytearray(f.read())
    try:
        applied, kept, moved = prelink(data, base)
    except Refuse as e:
        print("prelink: %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    except struct.error as e:
        print("prelink: %s: truncated or malformed ELF (%s)" % (argv[1], e), file=sys.stderr)
        return 1
    with open(argv[2], "wb") as f:
        f.write(data)
    print("prelink: %s at %#x: %d relative relocations applied, %d kept, %d symbols moved"
          % (argv[1], base, applied, kept, moved))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
