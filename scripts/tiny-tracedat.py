#!/usr/bin/env python3
"""Cut a trace-cmd v6 trace.dat down to a fuzzing seed of a few KiB.

    python3 scripts/tiny-tracedat.py IN.dat OUT.dat [EVENT ...]

Keeps the page and event headers, the formats of the named events (default: sched_switch and
sys_exit), a handful of saved command lines, no kallsyms and printk sections, and the first
page of each CPU whose first page holds data. libFuzzer mutates inputs of up to -max_len bytes;
a real file's kallsyms alone is megabytes, so seeds cut from real files never reach the page
decoder. Standard library only.
"""
import struct
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    keep = set(sys.argv[3:] or ["sched_switch", "sys_exit"])
    b = open(src, "rb").read()
    pos = 0

    def take(n):
        nonlocal pos
        s = b[pos:pos + n]
        if len(s) != n:
            sys.exit("truncated input")
        pos += n
        return s

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def cstr():
        nonlocal pos
        end = b.index(b"\0", pos)
        s = b[pos:end]
        pos = end + 1
        return s

    magic = take(10)
    version = cstr()
    if version != b"6":
        sys.exit("only v6 input (trace-cmd convert --file-version 6 --compression none)")
    endian, long_size = take(1), take(1)
    page_size = u("I")
    o = bytearray(magic + version + b"\0" + endian + long_size + struct.pack("<I", page_size))
    for name in (b"header_page", b"header_event"):
        if cstr() != name:
            sys.exit("expected " + name.decode())
        size = u("Q")
        o += name + b"\0" + struct.pack("<Q", size) + take(size)
    for _ in range(u("I")):
        take(u("Q"))
    o += struct.pack("<I", 0)
    systems = []
    for _ in range(u("I")):
        system = cstr()
        kept = []
        for _ in range(u("I")):
            text = take(u("Q"))
            name = text.split(b"\n", 1)[0].split(b":", 1)[-1].strip().decode()
            if name in keep:
                kept.append(text)
        if kept:
            systems.append((system, kept))
    o += struct.pack("<I", len(systems))
    for system, kept in systems:
        o += system + b"\0" + struct.pack("<I", len(kept))
        for text in kept:
            o += struct.pack("<Q", len(text)) + text
    take(u("I"))
    take(u("I"))
    cmdlines = take(u("Q"))
    lines = b"\n".join(cmdlines.split(b"\n")[:4]) + b"\n"
    o += struct.pack("<II", 0, 0) + struct.pack("<Q", len(lines)) + lines
    ncpus = u("I")
    kind = take(10)
    buffers = []
    if kind == b"options  \0":
        while (oid := u("H")) != 0:
            data = take(u("I"))
            if oid == 3:  # an instance buffer: its CPU table's offset, then its name
                buffers.append(struct.unpack("<Q", data[:8])[0])
        kind = take(10)
    if kind != b"flyrecord\0":
        sys.exit("no flyrecord data")
    table = [(u("Q"), u("Q")) for _ in range(ncpus)]
    if all(size == 0 for _, size in table) and buffers:
        # `trace-cmd extract -B`: the data is the instance's.
        pos = buffers[0]
        if b[pos:pos + 10] == b"flyrecord\0":
            pos += 10
        table = [(u("Q"), u("Q")) for _ in range(ncpus)]
    pages = [b[off:off + page_size] if size >= page_size else b"" for off, size in table]
    o += struct.pack("<I", ncpus) + b"options  \0" + struct.pack("<H", 0) + b"flyrecord\0"
    start = len(o) + 16 * ncpus
    for p in pages:
        o += struct.pack("<QQ", start if p else 0, len(p))
        start += len(p)
    for p in pages:
        o += p
    open(out, "wb").write(o)
    print(f"{out}: {len(o)} bytes, {len(systems)} systems, {ncpus} CPUs")


main()
