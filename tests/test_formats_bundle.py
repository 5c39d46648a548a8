"""Zip bundles: readable by zipfile, deflated, and byte-identical for identical input."""

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


def test_large_solution_files_are_stored_small_ones_deflated() -> None:
    import io
    import zipfile

    from chalicelib.formats.bundle import STORE_ABOVE, build_zip

    big = bytes(STORE_ABOVE + 1)
    z = zipfile.ZipFile(io.BytesIO(build_zip({"cal.bin": big, "flags.txt": b"1\n2\n" * 100})))
    assert z.getinfo("cal.bin").compress_type == zipfile.ZIP_STORED
    assert z.getinfo("flags.txt").compress_type == zipfile.ZIP_DEFLATED
    assert z.read("cal.bin") == big and z.testzip() is None
