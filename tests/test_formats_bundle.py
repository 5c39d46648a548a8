"""Zip bundles: readable by zipfile and unzip, every entry deflated, and byte-identical for identical input."""

from __future__ import annotations

import io
import zipfile

import pytest

from chalicelib.formats.bundle import build_zip

FILES = {
    "1369821496_solutions.bin": b"MWAOCAL\0" + bytes(range(256)) * 64,
    "1369821496_flagged_tiles.txt": b"3\n77\n",
    "README.txt": b"calibration bundle\n" * 20,
    "empty.txt": b"",
}


def test_zip_holds_every_file_deflated() -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip(FILES))) as zf:
        assert zf.testzip() is None  # every CRC checks out
        assert sorted(zf.namelist()) == sorted(FILES)
        for name, content in FILES.items():
            assert zf.read(name) == content
            assert zf.getinfo(name).compress_type == zipfile.ZIP_DEFLATED
        big = zf.getinfo("1369821496_solutions.bin")
        assert big.compress_size < big.file_size  # it really is compressed


def test_identical_input_gives_identical_bytes() -> None:
    first = build_zip(FILES)
    second = build_zip(dict(reversed(list(FILES.items()))))  # same files, other insertion order
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_different_content_gives_different_bytes() -> None:
    assert build_zip(FILES) != build_zip({**FILES, "README.txt": b"changed"})


def test_empty_bundle_is_a_valid_zip() -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip({}))) as zf:
        assert zf.namelist() == []


def test_extracted_files_are_readable_regular_files(tmp_path) -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip({"sub/a.txt": b"x"}))) as zf:
        info = zf.getinfo("sub/a.txt")
        assert (info.external_attr >> 16) & 0o777 == 0o644
        zf.extractall(tmp_path)
    assert (tmp_path / "sub" / "a.txt").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.txt", "a/../../b", "dir\\file", "", "a//b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        build_zip({name: b"x"})


def test_solution_files_are_deflated_as_standard_deflate_that_any_unzip_reads(tmp_path) -> None:
    """A real AO-cal file from hyperdrive: smaller in the zip, and read back by zlib, zipfile and unzip."""
    import shutil
    import struct
    import subprocess
    import zlib

    from tests.mwa_files import mwa_file

    real = mwa_file("1186438304", "1186438304_ch142-149_solutions.bin").read_bytes()  # 2,097,200 bytes
    zipped = build_zip({"1186438304.bin": real, "1186438304_flagged_tiles.txt": b"3\n77\n"})
    assert len(zipped) < 0.8 * len(real)  # float noise of a real fit: ~24 % smaller (a rebuilt one: ~half)

    # the first local header, read by the zip specification's layout: method 8, then the raw deflate stream
    sig, _, _, method = struct.unpack_from("<4s3H", zipped, 0)
    packed_size, size, name_len, extra_len = struct.unpack_from("<2L2H", zipped, 18)
    assert (sig, method, size) == (b"PK\x03\x04", 8, len(real))
    start = 30 + name_len + extra_len
    assert zlib.decompressobj(-15).decompress(zipped[start:start + packed_size]) == real

    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert zf.testzip() is None and zf.read("1186438304.bin") == real
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    path = tmp_path / "bundle.zip"
    path.write_bytes(zipped)
    if shutil.which("unzip") is None:
        pytest.skip("Debian's unzip is not installed (apt-get install unzip)")
    run = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "No errors detected" in run.stdout, run.stdout + run.stderr


def test_unicode_names_are_flagged_utf8() -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip({"caf\u00e9.txt": b"x", "plain.txt": b"y"}))) as zf:
        assert zf.read("caf\u00e9.txt") == b"x" and zf.getinfo("caf\u00e9.txt").flag_bits & 0x800
        assert not zf.getinfo("plain.txt").flag_bits & 0x800
