"""Pinned-hash downloads, tested on local files (no network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from medseq.sources import physionet2012
from medseq.sources._download import ChecksumError, fetch, sha256_file


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_file_url_with_the_right_hash(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 3_000_000)
    dest = fetch(source.as_uri(), tmp_path / "out" / "file.bin", digest(b"x" * 3_000_000))
    assert dest.read_bytes() == b"x" * 3_000_000
    assert sha256_file(dest) == digest(b"x" * 3_000_000)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def test_fetch_mismatch_deletes_and_raises(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"tampered")
    dest = tmp_path / "file.bin"
    wanted = digest(b"original")
    message = (
        f"sha256 mismatch: expected {wanted}, got {digest(b'tampered')}; the download was deleted"
    )
    with pytest.raises(ChecksumError, match=message):
        fetch(source.as_uri(), dest, wanted, progress=False)
    assert list(tmp_path.iterdir()) == [source]


def test_fetch_keeps_a_verified_file_without_downloading(tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"done")

    def opener(url):
        raise AssertionError("must not download again")

    assert fetch("https://example.invalid/file.bin", dest, digest(b"done"), opener=opener) == dest


def test_fetch_replaces_a_corrupt_file(tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"half")
    fetch("mem://file.bin", dest, digest(b"whole"), opener=lambda url: io.BytesIO(b"whole"))
    assert dest.read_bytes() == b"whole"


def test_fetch_interrupted_leaves_nothing(tmp_path):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        fetch("mem://f", tmp_path / "f", digest(b""), opener=lambda url: Broken())
    assert list(tmp_path.iterdir()) == []


def test_fetch_rejects_a_malformed_hash(tmp_path):
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits, got 'abc'"):
        fetch("mem://f", tmp_path / "f", "abc")


def mirror(root: Path) -> dict[str, str]:
    """A file:// copy of the PhysioNet folder holding a tiny set A; returns its hashes."""
    root.mkdir()
    text = b"Time,Parameter,Value\n00:00,RecordID,11\n00:00,Age,50\n01:00,HR,80\n"
    archive = root / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("set-a/11.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    outcomes = b"RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n11,1,1,4,-1,0\n"
    (root / "Outcomes-a.txt").write_bytes(outcomes)
    return {"set-a.tar.gz": sha256_file(archive), "Outcomes-a.txt": digest(outcomes)}


def test_download_then_read(tmp_path, monkeypatch):
    hashes = mirror(tmp_path / "mirror")
    for name, value in hashes.items():
        monkeypatch.setitem(physionet2012.SHA256, name, value)
    got = physionet2012.download(
        tmp_path / "data", "a", base_url=(tmp_path / "mirror").as_uri() + "/", progress=False
    )
    assert got == tmp_path / "data" / "set-a.tar.gz"
    data = physionet2012.read(got)
    assert data.events["value"].tolist() == [80.0] and data.static.loc[11, "Age"] == 50.0


def test_download_refuses_unpinned_bytes(tmp_path):
    mirror(tmp_path / "mirror")  # its files do not hash to the official values
    with pytest.raises(ChecksumError, match=r"Outcomes-a\.txt: sha256 mismatch"):
        physionet2012.download(tmp_path / "data", "a", base_url=(tmp_path / "mirror").as_uri())
    assert not (tmp_path / "data" / "Outcomes-a.txt").exists()


def test_download_checks_the_set_name(tmp_path):
    with pytest.raises(ValueError, match=r"set_name must be one of \('a', 'b', 'c'\), got 'd'"):
        physionet2012.download(tmp_path, "d")


def test_official_hashes_are_pinned():
    assert set(physionet2012.SHA256) == {
        f"{kind}-{s}{ext}"
        for s in "abc"
        for kind, ext in [("set", ".tar.gz"), ("Outcomes", ".txt")]
    }
    assert all(len(v) == 64 for v in physionet2012.SHA256.values())
