"""The manifest of real training photos, the readers of the members it names, and ``fixlens data photos``'s
checks. Downloading from the registries is exercised by hand (docs/model-card.md, *Round 21*); here a package
is a folder laid out as an extracted one."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from fixlens.cli import main
from vision.training import photo_sources as ps
from vision.training.photos import load_photos


def _bundle(files: dict[str, bytes], compress: frozenset[str] = frozenset()) -> bytes:
    """A Qt resource bundle, format 2, holding ``files`` under one folder ``/res``."""
    names = b""
    name_offsets: dict[str, int] = {}
    for name in ["res", *files]:
        name_offsets[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    body = b""
    data_offsets: dict[str, int] = {}
    for name, blob in files.items():
        if name in compress:
            blob = struct.pack(">I", len(blob)) + zlib.compress(blob)
        data_offsets[name] = len(body)
        body += struct.pack(">I", len(blob)) + blob
    nodes = [struct.pack(">IHII", 0, 2, 1, 1) + bytes(8),  # the root: one child, node 1
             struct.pack(">IHII", name_offsets["res"], 2, len(files), 2) + bytes(8)]
    for name in files:
        flags = 1 if name in compress else 0
        nodes.append(struct.pack(">IHHHI", name_offsets[name], flags, 0, 0, data_offsets[name]) + bytes(8))
    tree = b"".join(nodes)
    header = 20
    return b"qres" + struct.pack(">IIII", 2, header, header + len(tree), header + len(tree) + len(body)) + tree \
        + body + names


def _png(colour: tuple[int, int, int], size: int = 240) -> bytes:
    img = np.zeros((size, size + 40, 3), np.uint8)
    img[:] = colour
    cv2.circle(img, (size // 2, size // 2), size // 4, (255 - colour[0], 90, 30), -1)
    ok, data = cv2.imencode(".png", img)
    assert ok
    return data.tobytes()


def test_the_shipped_manifest_names_real_photos_from_the_registries_only():
    sources = ps.read_manifest()
    assert len(sources) >= 300
    assert len({s.name for s in sources}) == len(sources)
    assert {s.registry for s in sources} <= set(ps.REGISTRIES)
    # the evaluation's photos come from these two and must never be rebuilt into a training folder
    assert not {s.package for s in sources} & {"scikit-image", "matplotlib"}
    people_or_rooms = [s for s in sources if s.kinds & {"people", "indoor"}]
    assert len(people_or_rooms) >= 40


@pytest.mark.parametrize(("row", "message"), [
    ("debian\tpkg\t1.0\ta.jpg\toutdoor", "expected 6 tab-separated fields"),
    ("ftp\tpkg\t1.0\ta.jpg\toutdoor\ta.jpg", "registry 'ftp'"),
    ("debian\tpkg\t1.0\ta.jpg\tbeach\ta.jpg", "kind 'beach'"),
    ("debian\tpkg\t1.0\t../../etc/passwd\toutdoor\ta.jpg", "must be relative"),
    ("debian\tpkg\t1.0\t/etc/a.jpg\toutdoor\ta.jpg", "must be relative"),
    ("debian\tpkg\t1.0\ta.jpg\toutdoor\tsub/a.jpg", "plain file name"),
    ("debian\tpkg\t1.0\ta.jpg\toutdoor\ta.gif", "plain file name"),
    ("debian\t\t1.0\ta.jpg\toutdoor\ta.jpg", "package '' and version"),
    ("debian\t--allow-unauthenticated\t1.0\ta.jpg\toutdoor\ta.jpg", "package '--allow-unauthenticated'"),
    ("pypi\tpkg\t>=1\ta.jpg\toutdoor\ta.jpg", "version '>=1'"),
])
def test_a_bad_manifest_row_is_named_by_file_and_line(tmp_path, row, message):
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"# registry\tpackage\tversion\tpath\tkind\tname\n\n{row}\n")
    with pytest.raises(ps.SourceError, match=message) as info:
        ps.read_manifest(manifest)
    assert f"{manifest}:3" in str(info.value)


def test_a_name_given_twice_names_both_lines(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("npm\tp\t1\ta.jpg\tpeople\tx.jpg\nnpm\tp\t1\tb.jpg\tpeople\tx.jpg\n")
    with pytest.raises(ps.SourceError, match=r"m.tsv:2: name 'x.jpg' is already given on line 1"):
        ps.read_manifest(manifest)


def test_an_empty_manifest_is_refused(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("# only a comment\n")
    with pytest.raises(ps.SourceError, match="names no photo"):
        ps.read_manifest(manifest)


def test_a_qt_resource_bundle_gives_back_its_files_plain_and_compressed():
    files = {"a.png": b"plain bytes", "b.webp": b"squeezed " * 50}
    out = ps.rcc_files(_bundle(files, compress=frozenset({"b.webp"})))
    assert out == {"/res/a.png": b"plain bytes", "/res/b.webp": b"squeezed " * 50}


def test_a_file_that_is_not_a_bundle_or_is_damaged_is_named():
    with pytest.raises(ps.SourceError, match=r"x\.rcc: not a Qt resource bundle"):
        ps.rcc_files(b"PK\x03\x04 a zip", "x.rcc")
    damaged = bytearray(_bundle({"a.png": b"1234"}, compress=frozenset({"a.png"})))
    damaged[-30:-20] = b"\xff" * 10  # into the compressed stream and the names
    with pytest.raises(ps.SourceError, match=r"y\.rcc"):
        ps.rcc_files(bytes(damaged[:-12]), "y.rcc")


def test_members_are_read_from_files_bundles_and_video_frames(tmp_path):
    root = tmp_path / "pkg"
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/photo.png").write_bytes(_png((40, 160, 220)))
    (root / "usr/share/res.rcc").write_bytes(_bundle({"in.png": _png((200, 30, 30))}))
    video = cv2.VideoWriter(str(root / "usr/share/clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 8, (280, 240))
    for level in (0, 120, 250):
        video.write(np.full((240, 280, 3), level, np.uint8))
    video.release()

    assert ps.read_member(root, "usr/share/photo.png", "t")[5, 5].tolist() == [40, 160, 220]
    assert ps.read_member(root, "usr/share/res.rcc:/res/in.png", "t")[5, 5].tolist() == [200, 30, 30]
    frame = ps.read_member(root, "usr/share/clip.avi#frame=1", "t")
    assert frame.shape == (240, 280, 3) and abs(int(frame.mean()) - 120) <= 3
    with pytest.raises(ps.SourceError, match=r"photo 7: .*gone.png not found"):
        ps.read_member(root, "usr/share/gone.png", "photo 7")
    with pytest.raises(ps.SourceError, match=r"/res/none\.png is not in"):
        ps.read_member(root, "usr/share/res.rcc:/res/none.png", "t")
    with pytest.raises(ps.SourceError, match="frame 40 of"):
        ps.read_member(root, "usr/share/clip.avi#frame=40", "t")
    bundles: dict[Path, dict[str, bytes]] = {}
    assert ps.read_member(root, "usr/share/res.rcc:/res/in.png", "t", bundles)[5, 5].tolist() == [200, 30, 30]
    (root / "usr/share/res.rcc").write_bytes(b"gone")  # a second read takes the bundle's files as first read
    assert ps.read_member(root, "usr/share/res.rcc:/res/in.png", "t", bundles)[5, 5].tolist() == [200, 30, 30]
    (root / "usr/share/notes.png").write_bytes(b"not an image")
    with pytest.raises(ps.SourceError, match="not an image OpenCV can read"):
        ps.read_member(root, "usr/share/notes.png", "t")


def test_a_folder_built_from_a_manifest_holds_each_photo_once_and_loads(tmp_path):
    root = tmp_path / "extracted"
    (root / "img").mkdir(parents=True)
    (root / "img/one.png").write_bytes(_png((10, 200, 90)))
    (root / "img/res.rcc").write_bytes(_bundle({"two.png": _png((180, 60, 240))}))
    manifest = tmp_path / "m.tsv"
    manifest.write_text("debian\tpkg\t1.0\timg/one.png\tindoor\tpkg_one.jpg\n"
                        "debian\tpkg\t1.0\timg/res.rcc:/res/two.png\tpeople\tpkg_two.png\n")
    fetched: list[tuple[str, str, str]] = []

    def local_package(registry: str, package: str, version: str, work: Path) -> Path:
        fetched.append((registry, package, version))
        return root

    out = tmp_path / "photos"
    assert ps.build_folder(ps.read_manifest(manifest), out, tmp_path / "work", fetch=local_package) == 2
    assert fetched == [("debian", "pkg", "1.0")]  # one fetch per package
    assert sorted(p.name for p in out.iterdir()) == ["pkg_one.jpg", "pkg_two.png"]
    assert len(load_photos(out)) == 2


def test_the_command_refuses_a_folder_with_files_and_unknown_kinds_before_downloading(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.jpg").write_bytes(b"x")
    assert main(["data", "photos", "--out", str(full), "--work", str(tmp_path / "w")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "photos", "--out", str(tmp_path / "new"), "--kinds", "people,cats"]) == 2
    assert "--kinds 'people,cats'" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main(["data", "photos", "--out", str(tmp_path / "a-file")]) == 2
    assert "a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "new-packages").exists()


def test_a_missing_download_tool_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(ps.SourceError, match=r"npm package left-pad 1\.3\.0: `npm` is not installed"):
        ps.fetch_package("npm", "left-pad", "1.3.0", tmp_path / "work")


def _fake_debian_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extract: str) -> None:
    """Debian's download clients replaced on PATH: `apt-get download` leaves an empty .deb in the current folder,
    and `dpkg-deb -x DEB DEST` runs the shell line ``extract`` (``$3`` is DEST)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text("#!/bin/sh\ntouch pkg_1.0_all.deb\n")
    (tools / "dpkg-deb").write_text(f"#!/bin/sh\n{extract}\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")


def test_a_relative_work_folder_holds_the_extracted_package(tmp_path, monkeypatch):
    """Each download runs inside its scratch folder, so a relative --work once sent the files beneath it."""
    _fake_debian_tools(tmp_path, monkeypatch, 'mkdir -p "$3/usr/share" && touch "$3/usr/share/photo.jpg"')
    monkeypatch.chdir(tmp_path)
    root = ps.fetch_package("debian", "pkg", "1.0", Path("work"))
    assert root.is_absolute()
    assert (root / "usr/share/photo.jpg").is_file()
    assert ps.fetch_package("debian", "pkg", "1.0", Path("work")) == root  # kept: nothing fetched again


def test_a_build_refused_for_an_evaluation_photo_leaves_no_folder(tmp_path, monkeypatch, capsys):
    """The photos are checked in a scratch folder beside --out; a refusal removes it and writes no --out."""
    import skimage.data

    evaluation = Path(skimage.data.__file__).parent / "astronaut.png"
    _fake_debian_tools(tmp_path, monkeypatch, f'mkdir -p "$3/usr/share" && cp {evaluation} "$3/usr/share/a.png"')
    manifest = tmp_path / "m.tsv"
    manifest.write_text("debian\tpkg\t1.0\tusr/share/a.png\tpeople\tpkg_a.png\n")
    out = tmp_path / "photos"
    assert main(["data", "photos", "--out", str(out), "--manifest", str(manifest)]) == 2
    assert "astronaut" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "photos.partial").exists()
    assert (tmp_path / "photos-packages").is_dir()  # the download is kept for the next try
