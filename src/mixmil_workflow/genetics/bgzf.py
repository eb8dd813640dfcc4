"""Write BGZF (blocked gzip), the compression of ``.vcf.gz`` files that htslib, bcftools and PLINK read.

Written here because none of the project's pinned libraries writes BGZF (pysam/htslib or biopython would
be a large dependency for the demo data only) and the format is small: a series of gzip members of at
most 64 KiB of input, each with a ``BC`` extra field holding the member's size, then an empty member
as end-of-file marker (SAM/BAM format specification, section 4.1). A BGZF file is a valid multi-member
gzip file, so ``gzip.open`` reads it too.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# Input per block: the spec bounds the *compressed* block at 64 KiB; incompressible input of 65280
# bytes still fits, as htslib's writer assumes.
BLOCK_INPUT = 65280
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _block(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush()
    block_size = 18 + len(deflated) + 8  # header with the BC field, deflate data, CRC32 and ISIZE
    header = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2, block_size - 1)
    return header + deflated + struct.pack("<2I", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


def write_bgzf(path: str | Path, text: str | bytes) -> None:
    """Compress ``text`` into ``path`` as BGZF (the caller makes the write atomic)."""
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as fh:
        for start in range(0, len(data), BLOCK_INPUT):
            fh.write(_block(data[start : start + BLOCK_INPUT]))
        fh.write(EOF_BLOCK)
