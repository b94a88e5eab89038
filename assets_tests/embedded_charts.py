"""Reads the charts the assets embed in markdown metadata: `![title](data:image/png;base64,...)`."""

import base64
import re
import struct

import dagster as dg

DATA_URI = re.compile(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails on anything that is not a PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])


def embedded_chart(value: dg.MarkdownMetadataValue) -> tuple[str, tuple[int, int]]:
    """(title, PNG size) of the one chart embedded in a markdown metadata value."""
    ((title, encoded),) = DATA_URI.findall(value.value)
    return title, png_size(base64.b64decode(encoded, validate=True))
