from __future__ import annotations

from pathlib import Path

import pytest

from vision.model_files import ModelFiles, ensure_models


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """The real MediaPipe model files, made by the same set-up function as `fixlens vision models`
    (the wheel download is cached in ~/.cache/fixlens, so only the first run on a machine downloads)."""
    return ensure_models(Path(tmp_path_factory.mktemp("vision-models")))
