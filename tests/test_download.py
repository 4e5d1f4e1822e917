"""`inficond download`: a real tar of real VOC-layout data, served over loopback HTTP with Range."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inficond.download import ARCHIVES, DownloadError, download_dataset, fetch, safe_extract
from inficond.exceptions import DataError, UnknownNameError

N_PER_SPLIT = 10


def _voc_xml(image_id: str, names: list[str]) -> str:
    objs = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
    return f"<annotation><filename>{image_id}.jpg</filename>{objs}</annotation>"


@pytest.fixture(scope="module")
def voc_tar(dev_data, tmp_path_factory) -> Path:
    """A VOCtrainval-shaped tar: real JPEGs from the development data, VOC XML from its labels."""
    rows = list(csv.DictReader(open(dev_data / "labels.csv")))
    classes = [c for c in rows[0] if c not in ("image", "split")]
    picked = {s: [r for r in rows if r["split"] == s][:N_PER_SPLIT] for s in ("train", "val")}
    out = tmp_path_factory.mktemp("voc") / "VOCtrainval_11-May-2012.tar"
    base = "VOCdevkit/VOC2012"

    def add(tar, name, data: bytes):
        info = tarfile.TarInfo(f"{base}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w") as tar:
        for split, rs in picked.items():
            add(tar, f"ImageSets/Main/{split}.txt", "".join(r["image"] + "\n" for r in rs).encode())
            for r in rs:
                add(tar, f"JPEGImages/{r['image']}.jpg", (dev_data / "images" / f"{r['image']}.jpg").read_bytes())
                add(tar, f"Annotations/{r['image']}.xml",
                    _voc_xml(r["image"], [c for c in classes if r[c] == "1"]).encode())
    return out


class ArchiveServer:
    """Serves one file over loopback; honours ``Range``; can cut the first response short."""

    def __init__(self, path: Path, cut_first_after: int | None = None, honour_range: bool = True):
        self.data = path.read_bytes()
        self.name = path.name
        self.cut = cut_first_after
        self.honour_range = honour_range
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                if self.path != f"/{outer.name}":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                data, start = outer.data, 0
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None:
                    body, outer.cut = body[: outer.cut], None  # drop the connection mid-body, once
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.name}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_interrupted_fetch_resumes_with_a_range_request(voc_tar, tmp_path):
    cut = voc_tar.stat().st_size // 3
    out = tmp_path / voc_tar.name
    with ArchiveServer(voc_tar, cut_first_after=cut) as srv:
        with pytest.raises(DownloadError, match="run again to resume"):
            fetch(srv.url, out, progress=False)
        part = out.with_name(out.name + ".part")
        assert not out.exists() and part.stat().st_size == cut
        fetch(srv.url, out, progress=False)
    assert srv.ranges == [None, f"bytes={cut}-"]
    assert out.read_bytes() == voc_tar.read_bytes()
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(voc_tar, tmp_path):
    out = tmp_path / voc_tar.name
    part = out.with_name(out.name + ".part")
    part.write_bytes(b"x" * 1000)  # not even a prefix of the file: a 200 must overwrite it
    with ArchiveServer(voc_tar, honour_range=False) as srv:
        fetch(srv.url, out, progress=False)
    assert srv.ranges == ["bytes=1000-"]
    assert out.read_bytes() == voc_tar.read_bytes()


def test_fetch_refuses_a_file_of_the_wrong_size(voc_tar, tmp_path):
    with ArchiveServer(voc_tar) as srv:
        with pytest.raises(DownloadError, match=f"{voc_tar.stat().st_size + 1:,}"):
            fetch(srv.url, tmp_path / "a.tar", size=voc_tar.stat().st_size + 1, progress=False)


def test_wrong_checksum_is_refused_and_nothing_extracted(voc_tar, tmp_path):
    dest = tmp_path / "voc"
    with ArchiveServer(voc_tar) as srv:
        with pytest.raises(DownloadError, match="expected 0{32}") as e:
            download_dataset("voc2012", dest, url=srv.url, md5="0" * 32, progress=False)
        assert md5(voc_tar) in str(e.value)
        assert not (dest / "VOCdevkit").exists()
        assert (dest / (voc_tar.name + ".corrupt")).read_bytes() == voc_tar.read_bytes()
        # the right checksum: downloads afresh and extracts
        root = download_dataset("voc2012", dest, url=srv.url, md5=md5(voc_tar), progress=False)
    assert root == dest / "VOCdevkit" / "VOC2012"
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 2 * N_PER_SPLIT


def test_bad_arguments_name_the_bad_value(tmp_path):
    with pytest.raises(UnknownNameError, match="voc2012"):
        download_dataset("voc2077", tmp_path)
    with pytest.raises(ValueError, match="'abc'"):
        download_dataset("voc2012", tmp_path, md5="abc")


def test_unsafe_members_are_refused_before_anything_is_written(tmp_path):
    for name, kind in [("../evil.txt", tarfile.REGTYPE), ("ok/link", tarfile.SYMTYPE)]:
        bad = tmp_path / f"bad-{kind!r}.tar"
        with tarfile.open(bad, "w") as tar:
            good = tarfile.TarInfo("ok/first.txt")
            good.size = 2
            tar.addfile(good, io.BytesIO(b"hi"))
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "../../../../etc/passwd"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
        dest = tmp_path / "out"
        with pytest.raises(DataError, match="refusing to extract"):
            safe_extract(bad, dest, progress=False)
        assert not (dest / "ok").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.clip
def test_registered_checksum_matches_torchvisions():
    voc = pytest.importorskip("torchvision.datasets.voc")
    theirs = voc.DATASET_YEAR_DICT["2012"]
    ours = ARCHIVES["voc2012"]
    assert (ours.md5, ours.filename) == (theirs["md5"], theirs["filename"])
    assert ours.data_dir == theirs["base_dir"].replace("\\", "/")


def test_cli_download_then_prepare(voc_tar, tmp_path, capsys):
    """The README path: `inficond download voc2012 DIR`, then `prepare --data DIR/VOCdevkit/VOC2012`."""
    from inficond.cli import main
    from inficond.session import Session

    dest = tmp_path / "data"
    with ArchiveServer(voc_tar) as srv:
        assert main(["download", "voc2012", str(dest), "--url", srv.url, "--md5", md5(voc_tar)]) == 0
        out = capsys.readouterr().out
        assert f"{dest / 'VOCdevkit' / 'VOC2012'}" in out
        # a second run finds the marker and fetches nothing
        n_requests = len(srv.ranges)
        assert main(["download", "voc2012", str(dest), "--url", srv.url, "--md5", md5(voc_tar)]) == 0
        assert len(srv.ranges) == n_requests
    ws = tmp_path / "ws"
    assert main(["prepare", "--data", str(dest / "VOCdevkit" / "VOC2012"), "--out", str(ws)]) == 0
    s = Session(ws)
    summary = s.summary()["dataset"]
    assert summary["n_images"] == 2 * N_PER_SPLIT
    assert summary["class_names"][0] == "aeroplane" and len(summary["class_names"]) == 20
    assert summary["splits"]["val"] == N_PER_SPLIT
