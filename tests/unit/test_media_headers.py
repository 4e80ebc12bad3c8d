"""Download headers, content types, address checks for previews, OpenGraph parsing, file storage."""

from __future__ import annotations

import ipaddress
import os

import pytest

from ranvier.client_api.media import content_disposition, safe_file_name
from ranvier.media.files import ContentTooLarge, FileStore
from ranvier.media.preview import parse_opengraph
from ranvier.outbound.addresses import address_allowed
from ranvier.media.service import clean_content_type


@pytest.mark.parametrize("content_type, name, expected", [
    ("image/png", "cat.png", 'inline; filename="cat.png"'),
    ("IMAGE/PNG; charset=binary", "cat.png", 'inline; filename="cat.png"'),
    ("text/plain; charset=utf-8", None, "inline"),
    ("image/svg+xml", "x.svg", 'attachment; filename="x.svg"'),
    ("text/html", "page.html", 'attachment; filename="page.html"'),
    ("application/octet-stream", "", "attachment"),
    ("image/png", "..\\../etc/passwd", 'inline; filename=".._.._etc_passwd"'),
    ("image/png", 'say "hi"\n.png', 'inline; filename="say _hi_.png"'),
    ("image/png", "\u202egnp.exe", 'inline; filename="gnp.exe"'),
    ("image/png", "日本.png", "inline; filename*=utf-8''%E6%97%A5%E6%9C%AC.png"),
    ("image/png", "a;b=c.png", 'inline; filename="a;b=c.png"'),
    ("image/png", "\r\n", "inline"),
])
def test_content_disposition(content_type, name, expected):
    assert content_disposition(content_type, name) == expected


def test_content_disposition_can_force_inline():
    assert content_disposition("application/x-thing", "thumbnail.png", inline=True) == 'inline; filename="thumbnail.png"'


def test_safe_file_name_drops_controls_and_separators():
    assert safe_file_name("a/b\\c\"d\x00e\x7ff\u200bg") == "a_b_c_defg"


@pytest.mark.parametrize("header, expected", [
    ("image/png", "image/png"),
    (" text/plain; charset=utf-8 ", "text/plain; charset=utf-8"),
    (None, "application/octet-stream"),
    ("", "application/octet-stream"),
    ("nonsense", "application/octet-stream"),
    ("text/html\r\nX-Evil: 1", "application/octet-stream"),
    ("a/" + "b" * 300, "application/octet-stream"),
])
def test_clean_content_type(header, expected):
    assert clean_content_type(header) == expected


@pytest.mark.parametrize("address, allowed", [
    ("93.184.216.34", True),
    ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False),
    ("10.1.2.3", False),
    ("172.16.0.1", False),
    ("192.168.0.1", False),
    ("169.254.169.254", False),
    ("100.64.0.1", False),
    ("0.0.0.0", False),
    ("255.255.255.255", False),
    ("224.0.0.1", False),
    ("::1", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("::ffff:127.0.0.1", False),
    ("::ffff:93.184.216.34", True),
])
def test_only_public_addresses_are_fetched(address, allowed):
    assert address_allowed(ipaddress.ip_address(address), []) is allowed


def test_allowed_networks_open_private_ranges():
    networks = [ipaddress.ip_network("10.0.0.0/8")]
    assert address_allowed(ipaddress.ip_address("10.9.8.7"), networks)
    assert not address_allowed(ipaddress.ip_address("192.168.0.1"), networks)


def test_parse_opengraph():
    og, image = parse_opengraph(
        '<html><head><title> Page </title><meta property="og:title" content="OG">'
        '<meta property="og:title" content="second ignored"><meta name="description" content="Desc">'
        '<meta property="og:image" content="/i.png"><meta property="og:image:width" content="10">'
        '<meta property="og:type" content="article"></head></html>'
    )
    assert og == {"og:title": "OG", "og:description": "Desc", "og:type": "article"}
    assert image == "/i.png"


def test_parse_opengraph_falls_back_to_the_title_and_survives_broken_html():
    og, image = parse_opengraph("<title>Only a title</title><meta content=x><div <<<")
    assert (og, image) == ({"og:title": "Only a title"}, None)


async def _chunks(*parts):
    for part in parts:
        yield part


async def test_file_store_stores_equal_bytes_once(tmp_path):
    files = FileStore(str(tmp_path))
    first, size = await files.write_stream(_chunks(b"ab", b"c"), 10)
    second = await files.write_bytes(b"abc")
    assert first == second and size == 3
    with open(files.path(first), "rb") as handle:
        assert handle.read() == b"abc"
    assert os.listdir(files.temp_dir) == []


async def test_file_store_stops_at_the_limit_and_leaves_nothing(tmp_path):
    files = FileStore(str(tmp_path))
    with pytest.raises(ContentTooLarge):
        await files.write_stream(_chunks(b"12345", b"6"), 5)
    assert os.listdir(files.temp_dir) == []
    assert os.listdir(files.content_dir) == []
