#!/usr/bin/python3
"""png_stats.py PNG: is a screenshot blank? Standard library only.

Decodes an 8-bit RGB or RGBA PNG (colour types 2 and 6, non-interlaced, all
five filter types), prints e.g.
    screenshot 1200x1600: 3.2% non-white pixels, 7 colours
and exits 1 when the image is blank: fewer than 0.5% non-white pixels or
fewer than 3 distinct colours. Exits 2 when the file is not a PNG it can
decode."""
import struct
import sys
import zlib

MIN_NON_WHITE = 0.5  # percent
MIN_COLOURS = 3


def decode(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError("truncated chunk %r" % ctype)
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if ihdr is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _comp, _filt, interlace = ihdr
    if depth != 8 or colour not in (2, 6):
        raise ValueError("unsupported PNG: bit depth %d, colour type %d" % (depth, colour))
    if interlace != 0:
        raise ValueError("interlaced PNGs are not supported")
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) < height * (stride + 1):
        raise ValueError("image data too short")
    rows, prev = [], bytearray(stride)
    for y in range(height):
        off = y * (stride + 1)
        ftype = raw[off]
        line = bytearray(raw[off + 1:off + 1 + stride])
        if ftype == 0:
            pass
        elif ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
                line[i] = (line[i] + pred) & 0xFF
        else:
            raise ValueError("bad filter type %d in row %d" % (ftype, y))
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def stats(width, height, bpp, rows):
    non_white, colours = 0, set()
    for line in rows:
        for i in range(0, len(line), bpp):
            px = line[i:i + 3]
            if bpp == 4 and line[i + 3] == 0:
                px = b"\xff\xff\xff"  # fully transparent: background
            colours.add(px)
            if px != b"\xff\xff\xff":
                non_white += 1
    total = width * height
    pct = 100.0 * non_white / total if total else 0.0
    return pct, len(colours)


def main(argv):
    if len(argv) != 2:
        print("usage: png_stats.py PNG", file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            width, height, bpp, rows = decode(f.read())
    except (OSError, ValueError, zlib.error) as e:
        print("%s: %s" % (argv[1], e), file=sys.stderr)
        return 2
    pct, colours = stats(width, height, bpp, rows)
    print("screenshot %dx%d: %.1f%% non-white pixels, %d colours" % (width, height, pct, colours))
    if pct < MIN_NON_WHITE or colours < MIN_COLOURS:
        print("the screenshot is blank", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
