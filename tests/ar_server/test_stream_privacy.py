"""Frames reach the disk only with consent, a configured folder, and faces blurred (else not at all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ar_server.conftest import StreamClient, TwinFrames, stream_frames


async def test_frames_are_stored_only_with_consent_and_blur(start_server: Any, connect: Any, authority: Any,
                                                            twin_frames: TwinFrames, tmp_path: Path) -> None:
    from vision.model_files import model_files

    folder = tmp_path / "frames"
    server = await start_server(store_frames_dir=folder)
    no_consent: StreamClient = await connect(server)
    silent = await no_consent.hello(authority.mint("customer", "c1", 600))
    await stream_frames(no_consent, twin_frames.fault, seconds=1.0)
    consent: StreamClient = await connect(server)
    agreed = await consent.hello(authority.mint("customer", "c2", 600), consent_store_frames=True)
    await stream_frames(consent, twin_frames.fault, seconds=1.5)
    assert not (folder / silent.session).exists()
    if model_files(None).face_model.is_file():
        assert list((folder / agreed.session).glob("*.jpg"))
    else:  # fail closed, and say so
        assert not folder.exists() or not any(folder.iterdir())
        assert any(m.t == "notice" and m.code == "frames_not_stored" for m in consent.received)
