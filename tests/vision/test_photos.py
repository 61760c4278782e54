"""Real photos as training backgrounds (`vision.training.photos`): never the evaluation's, and they change
only the background of the frames they are drawn into."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.training.photos import PhotoBackgrounds, PhotoError, load_photos, photo_background


def _photo(seed: int, w: int = 400, h: int = 300) -> np.ndarray:
    """A photo-like BGR image: smooth colour fields with edges, unlike any other seed's."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (4, 5, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x, y), (x + 60, y + 40), tuple(float(c) for c in rng.uniform(0, 255, 3)), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_an_evaluation_photo_resized_and_recompressed_is_refused_by_name(tmp_path: Path) -> None:
    from vision.training.photos import real_photos

    name, evaluation = real_photos()[0]
    cv2.imwrite(str(tmp_path / "a_mine.jpg"), _photo(1))
    copy = cv2.resize(evaluation[:, ::-1], None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)  # mirrored, smaller
    cv2.imwrite(str(tmp_path / "b_copy.jpg"), (copy * 0.9).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 60])
    with pytest.raises(PhotoError, match=rf"b_copy\.jpg: the evaluation photo {name}"):
        load_photos(tmp_path)
    (tmp_path / "b_copy.jpg").unlink()
    assert len(load_photos(tmp_path)) == 1


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, "no .jpg/.jpeg/.png files"),
    (lambda d: cv2.imwrite(str(d / "icon.png"), _photo(2, 120, 90)), r"icon\.png: 120 x 90 px"),
    (lambda d: (d / "broken.jpg").write_bytes(b"not a jpeg"), r"broken\.jpg: not a readable image"),
])
def test_a_folder_that_cannot_serve_says_which_file(tmp_path: Path, setup, message: str) -> None:
    setup(tmp_path)
    with pytest.raises(PhotoError, match=message):
        load_photos(tmp_path, guard=[])
    with pytest.raises(PhotoError, match="not a folder"):
        load_photos(tmp_path / "missing", guard=[])


def test_a_photo_background_fills_any_frame_from_the_photo() -> None:
    photo = cv2.cvtColor(_photo(3, 1000, 700), cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(0)
    for width, height in ((640, 480), (360, 640), (640, 360)):
        crop = photo_background(rng, [photo], width, height)
        assert crop.shape == (height, width, 3) and crop.dtype == np.uint8
        # Photo to the edges, no padded border: every edge row and column varies as the photo does.
        for edge in (crop[0], crop[-1], crop[:, 0], crop[:, -1]):
            assert edge.astype(float).std() > 1.0
    with pytest.raises(ValueError, match="within"):
        PhotoBackgrounds([photo], 1.5, 0)
    with pytest.raises(ValueError, match="needs photos"):
        PhotoBackgrounds([], 0.3, 0)


def test_photos_change_the_background_and_nothing_else_of_a_frame() -> None:
    """The photo draws come from their own stream: a set rendered with photos holds the same products, states,
    poses and labels as the same seed without them, and a share of 0 renders the very same frames."""
    from vision.training.synth import Synthesizer

    photo = cv2.cvtColor(_photo(4, 900, 600), cv2.COLOR_BGR2RGB)

    def frames(**kw: object) -> list:
        synth = Synthesizer(seed=91, negative_share=0.0, **kw)
        try:
            return [synth.sample() for _ in range(3)]
        finally:
            synth.close()

    plain, none, every = frames(), frames(photos=[photo], photo_share=0.0), frames(photos=[photo], photo_share=1.0)
    for a, b, c in zip(plain, none, every, strict=True):
        assert np.array_equal(a.image, b.image)
        assert a.label_line == c.label_line and a.truth["pose"] == c.truth["pose"]
        assert a.truth["states"] == c.truth["states"]
        assert not np.array_equal(a.image, c.image)


def test_photo_options_are_checked_before_anything_is_written(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from fixlens.cli import main

    out = tmp_path / "set"
    for command in (["data", "synth", "--out", str(out), "--images", "2"],
                    ["train", "appearance", "--data", str(tmp_path), "--out", str(out)]):
        for extra, message in ((["--photo-share", "0.5"], "--photo-share needs --photos"),
                               (["--photos", str(tmp_path / "none")], "--photos: .*not a folder"),
                               (["--photos", str(tmp_path), "--photo-share", "2"], r"within \[0, 1\]")):
            if command[1] == "appearance":  # a synth folder's outline, so that the photos are what is checked
                (tmp_path / "images" / "train").mkdir(parents=True, exist_ok=True)
                (tmp_path / "data.yaml").write_text("names: {}\n")
            assert main([*command, *extra]) == 2
            assert re.search(message, capsys.readouterr().err)
            assert not out.exists()


def test_drawn_negatives_over_photos_show_the_photo() -> None:
    """The appearance check's and keypoint network's product-free frames can be real photos: the detector's
    boxes over them are the phantoms a real room gives."""
    from vision.training.negatives import drawn_negatives, mining_detector

    green = np.zeros((480, 640, 3), np.uint8)
    green[:, :, 1] = np.linspace(60, 220, 640, dtype=np.uint8)[None, :]  # RGB: a green ramp
    detector = mining_detector()
    for boxes in drawn_negatives(3, 5, detector, photos=[green], photo_share=1.0):
        b, g, r = (float(boxes[0].image[:, :, c].mean()) for c in range(3))  # BGR, through the phone's optics
        assert g > 2 * max(b, r), (b, g, r)
    drawn = next(iter(drawn_negatives(1, 5, detector)))[0].image
    again = next(iter(drawn_negatives(1, 5, detector, photos=[green], photo_share=0.0)))[0].image
    assert np.array_equal(drawn, again)


def test_the_keypoint_network_takes_photos_only_with_its_negatives(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from fixlens.cli import main

    (tmp_path / "truth" / "train").mkdir(parents=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "mine.jpg"), _photo(6))
    assert main(["train", "keypoints", "--data", str(tmp_path), "--photos", str(photos),
                 "--out", str(tmp_path / "w")]) == 2
    assert "--photos: the keypoint network sees photos only in its --negatives frames" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_an_appearance_cache_mined_with_other_photos_is_refused(tmp_path: Path) -> None:
    """``train appearance --cache`` reuses mined crops; crops mined with other photos (or none) would make the
    report say photos were used when they were not."""
    import json

    from product_models.catalog import default_catalog
    from vision.appearance import NONE
    from vision.training.appearance_train import train_appearance
    from vision.training.synth import class_names

    cache = tmp_path / "crops.npz"
    np.savez(cache, classes=json.dumps([*class_names(default_catalog()), NONE]), photos=json.dumps([0, 0.0]))
    photo = cv2.cvtColor(_photo(7), cv2.COLOR_BGR2RGB)
    with pytest.raises(ValueError, match=r"crops\.npz: crops mined with 0 photos at share 0\.0, asked for 1 at 0\.3"):
        train_appearance([], tmp_path / "w", cache=cache, photos=[photo], photo_share=0.3, log=lambda line: None)
