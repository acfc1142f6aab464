#!/usr/bin/env python3
"""Rewrite a trace-cmd trace.dat v7 with its compressed sections recompressed by another codec.

Debian's trace-cmd 3.1.6 on this machine is built with zstd only (`trace-cmd list -c`), and
`trace-cmd convert --compression zlib` refuses, so no zlib trace.dat can be produced here with
trace-cmd itself. This tool makes one from a real zstd file: every compressed section and every
flyrecord chunk is decompressed and compressed again with zlib exactly as libtracecmd's zlib
plugin does (`compress2(..., Z_BEST_COMPRESSION)`, i.e. a zlib stream at level 9), with the
same framing (u32 compressed size, u32 uncompressed size, data; CPU data as a u32 chunk count
and chunks of whole pages). The file is laid out again (metadata sections, flyrecord data at
page-aligned offsets, option sections last) with every offset updated; option contents, string
ids and the pages themselves are unchanged.

    python3 testdata/tools/recompress_tracedat.py IN.dat OUT.dat   (needs: pip install zstandard)
"""
import struct
import sys
import zlib

import zstandard

src, dst = sys.argv[1], sys.argv[2]
d = open(src, "rb").read()
MAGIC = b"\x17\x08\x44tracing"
assert d.startswith(MAGIC), "not a trace.dat"


def cstr(p):
    e = d.index(b"\0", p)
    return d[p:e], e + 1


ver, p = cstr(len(MAGIC))
assert ver == b"7", f"version {ver} (only v7 has compressed sections)"
endian_long, p = d[p:p + 2], p + 2
page_size = struct.unpack_from("<I", d, p)[0]
p += 4
codec, p = cstr(p)
assert codec == b"zstd", f"input compression {codec}"
_codec_version, p = cstr(p)
first_opts = struct.unpack_from("<Q", d, p)[0]

unzstd = zstandard.ZstdDecompressor()


def inflate(data, size):
    return unzstd.decompress(data, max_output_size=size)


def block(raw):
    c = zlib.compress(raw, 9)
    return struct.pack("<II", len(c), len(raw)) + c


out = bytearray()
out += MAGIC + b"7\0" + endian_long + struct.pack("<I", page_size)
out += b"zlib\0" + zlib.ZLIB_VERSION.encode() + b"\0"
first_opts_at = len(out)
out += b"\0" * 8

# Walk the option sections (stored uncompressed) and collect them.
opt_sections = []
off = first_opts
while off:
    sid, flags, strid, size = struct.unpack_from("<HHIQ", d, off)
    assert sid == 0 and not flags & 1, "compressed option sections are not handled"
    body = d[off + 16:off + 16 + size]
    opts, q, nxt = [], 0, 0
    while q < len(body):
        oid, osz = struct.unpack_from("<HI", body, q)
        q += 6
        opts.append([oid, bytearray(body[q:q + osz])])
        q += osz
        if oid == 0:
            nxt = struct.unpack_from("<Q", opts[-1][1])[0]
    opt_sections.append((strid, opts))
    off = nxt

# Metadata sections (options 16..21 hold their offsets).
for _, opts in opt_sections:
    for o in opts:
        if 16 <= o[0] <= 21:
            old = struct.unpack_from("<Q", o[1])[0]
            sid, flags, strid, size = struct.unpack_from("<HHIQ", d, old)
            body = d[old + 16:old + 16 + size]
            if flags & 1:
                cs, us = struct.unpack_from("<II", body)
                body = block(inflate(body[8:8 + cs], us))
            new = len(out)
            out += struct.pack("<HHIQ", sid, flags, strid, len(body)) + body
            o[1][0:8] = struct.pack("<Q", new)

# Flyrecord data of each buffer (option 3).
for _, opts in opt_sections:
    for o in opts:
        if o[0] != 3:
            continue
        b = o[1]
        data_off = struct.unpack_from("<Q", b)[0]
        q = 8
        _name, q = b.index(b"\0", q), b.index(b"\0", q) + 1
        q = b.index(b"\0", q) + 1  # clock
        q += 4  # page size
        ncpus = struct.unpack_from("<I", b, q)[0]
        q += 4
        sid, flags, strid, _ = struct.unpack_from("<HHIQ", d, data_off)
        head_at = len(out)
        out += struct.pack("<HHIQ", sid, flags, strid, 0)
        b[0:8] = struct.pack("<Q", head_at)
        for _ in range(ncpus):
            _cpu, coff, csize = struct.unpack_from("<IQQ", b, q)
            out += b"\0" * (-len(out) % page_size)
            new = len(out)
            if csize:
                chunks = struct.unpack_from("<I", d, coff)[0]
                r = coff + 4
                out += struct.pack("<I", chunks)
                for _ in range(chunks):
                    cs, us = struct.unpack_from("<II", d, r)
                    out += block(inflate(d[r + 8:r + 8 + cs], us))
                    r += 8 + cs
            struct.pack_into("<QQ", b, q + 4, new, len(out) - new)
            q += 20
        struct.pack_into("<Q", out, head_at + 8, len(out) - head_at - 16)

# Option sections last, chained in the same order.
struct.pack_into("<Q", out, first_opts_at, len(out))
for i, (strid, opts) in enumerate(opt_sections):
    body_len = sum(6 + len(v) for _, v in opts)
    here = len(out)
    nxt = 0 if i + 1 == len(opt_sections) else here + 16 + body_len
    out += struct.pack("<HHIQ", 0, 0, strid, body_len)
    for oid, v in opts:
        if oid == 0:
            v = struct.pack("<Q", nxt)
        out += struct.pack("<HI", oid, len(v)) + v
open(dst, "wb").write(out)
print(f"{dst}: {len(out)} bytes, zlib {zlib.ZLIB_VERSION}")
