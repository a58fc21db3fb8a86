"""User-facing errors: the CLI prints their message as one paragraph, without a traceback."""

from __future__ import annotations

from pathlib import Path


class GseditError(Exception):
    """An error caused by the user's input or environment, not by a bug in gsedit."""


# The README's install command ("Set up"), word for word: every hint about a missing package quotes it.
INSTALL_COMMAND = 'python -m pip install -e ".[dev]" && python -m pip install --no-deps nerfstudio==1.1.5'


class MissingPackageError(GseditError):
    """A package that gsedit's install command installs cannot be imported."""

    def __init__(self, what: str, package: str, detail: str = ""):
        reason = f" ({detail})" if detail else ""
        super().__init__(
            f"{what} needs {package}, which cannot be imported{reason}. gsedit's install command "
            f"(README, \"Set up\") installs it; run it in the gsedit folder: {INSTALL_COMMAND}"
        )


class InputFileError(GseditError):
    """A file given to gsedit is missing, broken or of a foreign layout."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ModelMissingError(GseditError):
    """A model's weights are neither in a local folder nor in the Hugging Face cache."""

    def __init__(self, what: str, model_id: str, option: str, detail: str = "", hub: bool = True):
        """`hub=False` for weights that are plain files (SAM, Real-ESRGAN, GFPGAN, torchvision)."""
        self.model_id = model_id
        if not hub:
            super().__init__(
                f"The {what} weights '{model_id}' are missing: {detail}. Pass the file with {option} PATH."
            )
            return
        msg = (
            f"The {what} model '{model_id}' is not available: it is not a local folder and "
            f"not in the Hugging Face cache (HF_HOME={_hf_home()}), and downloading is off or "
            f"failed. Download it once on a machine with network "
            f"(`huggingface-cli download {model_id}`) and copy the cache, or pass a local "
            f"folder with {option} PATH."
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


def _hf_home() -> str:
    import os

    return os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
