"""Fetch a public dataset archive for users who are online: ``inficond download voc2012 DIR``.

Three steps, each safe to interrupt and run again:

1. **fetch** the archive to ``DIR/<file>.part``, resuming with an HTTP ``Range`` request from
   the bytes already there (a server that ignores ``Range`` answers 200 and the fetch restarts);
   the finished file is renamed to ``DIR/<file>``;
2. **verify** its size and MD5 against the registered values (or ``md5=`` for a mirror). A file
   that fails is moved aside to ``<file>.corrupt`` (kept for inspection, never resumed from);
3. **extract** it below ``DIR``, refusing members that would land outside it (absolute paths,
   ``..``, links out, devices: ``tarfile``'s ``data`` filter plus our own check, for a clear error).
   A marker file records a finished extraction so a second run does nothing.

Then ``inficond prepare --data DIR/VOCdevkit/VOC2012 --out WS`` reads the result.

The VOC 2012 trainval figures (size 1,999,639,040 bytes, MD5 6cd6e144f989b92b3379bac3b3de84fd)
are the ones torchvision's ``datasets/voc.py`` registers for the same file; the original host
``host.robots.ox.ac.uk`` redirects to ``thor.robots.ox.ac.uk``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from inficond.exceptions import DataError, InficondError, UnknownNameError

__all__ = ["ARCHIVES", "Archive", "DownloadError", "download_dataset", "fetch", "md5sum", "safe_extract"]

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(InficondError, OSError):
    """The archive could not be fetched (network, HTTP status, size) or failed its checksum."""


@dataclass(frozen=True)
class Archive:
    """A registered dataset archive: where it is, what it must hash to, where the data lands."""

    name: str
    url: str
    filename: str
    size: Optional[int]
    md5: Optional[str]
    data_dir: str  # relative to the download folder: what ``prepare --data`` reads
    about: str


ARCHIVES: dict[str, Archive] = {
    "voc2012": Archive(
        name="voc2012",
        url="https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        filename="VOCtrainval_11-May-2012.tar",
        size=1_999_639_040,
        md5="6cd6e144f989b92b3379bac3b3de84fd",
        data_dir="VOCdevkit/VOC2012",
        about="PASCAL VOC 2012 trainval: 11,540 classification images (train 5,717 / val 5,823), 20 classes",
    ),
}


def md5sum(path: str | Path, progress: bool = True) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks."""
    path = Path(path)
    h = hashlib.md5()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"verify {path.name}", disable=not progress) as bar:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _total_from(resp, start: int) -> Optional[int]:
    """The whole file's size from a 206's ``Content-Range`` or a 200's ``Content-Length``."""
    cr = resp.headers.get("Content-Range")
    if cr and "/" in cr and not cr.endswith("/*"):
        return int(cr.rsplit("/", 1)[1])
    cl = resp.headers.get("Content-Length")
    return None if cl is None else int(cl) + start


def fetch(url: str, out: str | Path, *, size: Optional[int] = None, progress: bool = True,
          timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``out``, resuming ``out.part`` when it exists. Returns ``out``.

    Raises
    ------
    DownloadError
        On an HTTP error, a network error (the ``.part`` file is kept: run again to resume), or
        a size different from ``size``.
    """
    out = Path(out)
    part = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of this file: start again
        part.unlink()
        have = 0
    if have and size is not None and have == size:  # fetched in full before an interrupted rename
        part.replace(out)
        return out
    req = urllib.request.Request(url, headers={"User-Agent": "inficond-download"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and (size is None or have == size):  # nothing left to fetch
            part.replace(out)
            return out
        raise DownloadError(f"GET {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"cannot reach {url}: {getattr(e, 'reason', e)}; run again to retry"
                            + (f" (resumes from {have:,} bytes)" if have else "")) from None
    with resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # the server ignored Range: the body is the whole file
            have = 0
        total = _total_from(resp, have)
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url} is {total:,} bytes, expected {size:,}: not the registered file "
                                "(pass --url and --md5 for a mirror)")
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         desc=f"download {out.name}", disable=not progress) as bar:
            try:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise DownloadError(f"download of {url} interrupted after {f.tell():,} bytes ({e}); "
                                    "run again to resume") from None
    got = part.stat().st_size
    expected = size if size is not None else total
    if expected is not None and got != expected:
        raise DownloadError(f"download of {url} stopped at {got:,} of {expected:,} bytes; run again to resume")
    part.replace(out)
    return out


def _check_member(m: tarfile.TarInfo, dest: Path) -> None:
    target = (dest / m.name).resolve()
    if m.name.startswith(("/", "\\")) or not target.is_relative_to(dest):
        raise DataError(f"archive member {m.name!r} would be written outside {dest}; refusing to extract")
    if m.issym() or m.islnk():
        link = (target.parent / m.linkname) if m.issym() else (dest / m.linkname)
        if os.path.isabs(m.linkname) or not link.resolve().is_relative_to(dest):
            raise DataError(f"archive member {m.name!r} links outside {dest} (to {m.linkname!r}); refusing to extract")
    if m.isdev():
        raise DataError(f"archive member {m.name!r} is a device file; refusing to extract")


def safe_extract(archive: str | Path, dest: str | Path, progress: bool = True) -> int:
    """Extract a tar archive below ``dest`` after checking every member stays inside it.

    Returns the number of members extracted. Nothing is written when any member is unsafe.
    """
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:  # all checked before the first byte is written
                _check_member(m, dest)
            for m in tqdm(members, unit="file", desc=f"extract {Path(archive).name}", disable=not progress):
                tar.extract(m, dest, filter="data")
    except tarfile.TarError as e:
        raise DataError(f"{archive} is not a readable tar archive: {e}") from None
    return len(members)


def download_dataset(name: str, dest: str | Path, *, url: Optional[str] = None, md5: Optional[str] = None,
                     progress: bool = True, keep_archive: bool = True) -> Path:
    """Download, verify and extract the registered dataset ``name`` into ``dest``.

    Parameters
    ----------
    name : str
        A key of ``ARCHIVES`` (``voc2012``).
    dest : str or Path
        The folder for the archive and the extracted data.
    url : str, optional
        A mirror of the same file (default: the registered URL).
    md5 : str, optional
        The expected MD5 (default: the registered one). Give it with a mirror whose file differs.
    keep_archive : bool, default True
        Keep the verified archive after extraction (``False`` deletes it to save space).

    Returns
    -------
    Path
        The folder to pass to ``inficond prepare --data``.
    """
    if name not in ARCHIVES:
        raise UnknownNameError("dataset", name, sorted(ARCHIVES))
    spec = ARCHIVES[name]
    dest = Path(dest)
    want_md5 = (md5 or spec.md5 or "").lower() or None
    if want_md5 is not None and (len(want_md5) != 32 or any(c not in "0123456789abcdef" for c in want_md5)):
        raise ValueError(f"md5 must be 32 hex digits, got {md5!r}")
    size = spec.size if url is None or url == spec.url else None  # a mirror may repackage the file
    data_dir = dest / spec.data_dir
    marker = dest / f".{spec.name}.extracted"
    if marker.is_file() and data_dir.is_dir():
        done = json.loads(marker.read_text())
        if want_md5 is None or done.get("md5") == want_md5:
            return data_dir
    archive = dest / spec.filename
    if not archive.is_file():
        fetch(url or spec.url, archive, size=size, progress=progress)
    if want_md5 is not None:
        got = md5sum(archive, progress=progress)
        if got != want_md5:
            bad = archive.with_name(archive.name + ".corrupt")
            archive.replace(bad)
            raise DownloadError(f"{archive.name} has MD5 {got}, expected {want_md5}; moved it to {bad} "
                                "and extracted nothing. Run again to download it afresh.")
    safe_extract(archive, dest, progress=progress)
    if not data_dir.is_dir():
        raise DataError(f"{archive.name} holds no {spec.data_dir}/ folder; is it the {spec.name} archive?")
    marker.write_text(json.dumps({"md5": want_md5, "archive": spec.filename}))
    if not keep_archive:
        archive.unlink()
    return data_dir
