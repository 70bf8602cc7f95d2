"""Official ALIGNN weights into the skdynemb cache: figshare zips, and the ALIGNN-FF checkpoints of
the PyPI wheel ``alignn==2023.6.20``.

The wheel is fetched with the package manager (``pip download --no-deps``, never installed), its
sha256 checked, and each checkpoint's ``best_model.pt`` / ``config.json`` read out of the zip,
checked against the sha256 pinned here and written to ``<cache>/<checkpoint>/``. Run
``python -m skdynemb.backbones.alignn`` to pre-fetch them (``scripts/setup.sh`` does).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from skdynemb.backbones.alignn.checkpoints import sha256

FF_WHEEL = "alignn-2023.6.20-py2.py3-none-any.whl"
FF_REQUIREMENT = "alignn==2023.6.20"
FF_WHEEL_SHA256 = "6567b7cfcf84d869aaf202cfd00bae027f49ff9304a9b742a5c16bd733150fcc"
#: checkpoint -> file -> sha256, for the files under ``alignn/ff/<checkpoint>/`` in :data:`FF_WHEEL`.
FF_CHECKPOINTS = {
    "alignnff_wt01": {
        "best_model.pt": "9c8b6987b69cc11fbc6ec2f2752466a033910ef1ca463fad6c04d1260e95505f",
        "config.json": "5f10abd19f0e0475d3621e083fe618bfa79ae2ed0976772932f2c5e03a51c1ae",
    },
    "alignnff_wt1": {
        "best_model.pt": "7932791fa632a5aac99fd3a167cbce89eff3a163ec8e507242eac6fe4427e88c",
        "config.json": "bbfed28ff5749f8c170c4ed35ce7241fcf127f186b5e1682aa6ccbe270b8f40d",
    },
    "alignnff_wt10": {
        "best_model.pt": "255b95b24fecb0ed2c6b4d326bfc557acc2ed3b36ad3a36d1cc99276765803b7",
        "config.json": "6dd21d93a286d4b3d7eba16d8ee22dbf7603f10c9bb2768f54a53851dd45512c",
    },
}


def cache_dir() -> Path:
    """Where official checkpoints go: ``$SKDYNEMB_CACHE/alignn`` or ``~/.cache/skdynemb/alignn``.

    Returns
    -------
    folder : Path
        The cache folder (not created here).
    """
    root = os.environ.get("SKDYNEMB_CACHE")
    return Path(root) / "alignn" if root else Path.home() / ".cache" / "skdynemb" / "alignn"


def fetch_url(name: str, url: str) -> Path:
    """Local zip of official model ``name`` (figshare ``url``), downloaded into :func:`cache_dir` once.

    Parameters
    ----------
    name : str
        Official model name; the file is saved as ``<cache_dir>/<name>.zip``.
    url : str
        Download address.

    Returns
    -------
    path : Path
        The local zip.

    Raises
    ------
    RuntimeError
        The download failed (the message says how to provide the file offline).
    """
    target = cache_dir() / f"{name}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.part")
    try:
        urllib.request.urlretrieve(url, partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download ALIGNN model {name!r} from {url} ({exc}). "
            f"Offline? Download that file elsewhere and pass its path (weights='/path/to/{name}.zip', "
            f"or the extracted folder), or save it as {target}."
        ) from exc
    partial.replace(target)
    return target


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_download(folder: Path) -> None:
    """``pip download --no-deps alignn==2023.6.20 -d folder`` (raises CalledProcessError on failure)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", FF_REQUIREMENT, "-d", str(folder)],
                   check=True, capture_output=True, text=True)


def ff_wheel() -> Path:
    """The verified ALIGNN-FF wheel in :func:`cache_dir`, fetched with pip when absent.

    Returns
    -------
    path : Path
        The wheel file.
    """
    target = cache_dir() / FF_WHEEL
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            try:
                _pip_download(Path(tmp))
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", None) or str(exc)
                raise RuntimeError(
                    f"the ALIGNN-FF weights come from the PyPI wheel {FF_WHEEL} (sha256 {FF_WHEEL_SHA256}), "
                    f"which is not in {target.parent} and could not be fetched: "
                    f"`pip download --no-deps {FF_REQUIREMENT}` failed ({detail.strip()[-300:]}). "
                    f"Offline? On a machine with internet run `pip download --no-deps {FF_REQUIREMENT} -d DIR` "
                    f"and copy DIR/{FF_WHEEL} into {target.parent}, or unzip it and pass "
                    "weights='<unzipped>/alignn/ff/alignnff_wt01' (or alignnff_wt1, alignnff_wt10)."
                ) from exc
            (Path(tmp) / FF_WHEEL).replace(target)
    digest = _file_sha256(target)
    if digest != FF_WHEEL_SHA256:
        raise ValueError(f"{target}: sha256 {digest}, expected {FF_WHEEL_SHA256} (delete it to fetch it again)")
    return target


def fetch_ff(checkpoint: str) -> Path:
    """``<cache>/<checkpoint>/`` with the verified ``best_model.pt`` and ``config.json`` of an
    ALIGNN-FF checkpoint (:data:`FF_CHECKPOINTS`), extracted from :func:`ff_wheel` when missing.

    Parameters
    ----------
    checkpoint : str
        A key of :data:`FF_CHECKPOINTS`.

    Returns
    -------
    folder : Path
        The checkpoint folder, its files' sha256 checked.

    Raises
    ------
    ValueError
        ``checkpoint`` is unknown, or a file in the wheel has the wrong sha256.
    """
    if checkpoint not in FF_CHECKPOINTS:
        raise ValueError(f"unknown ALIGNN-FF checkpoint {checkpoint!r}; known: {sorted(FF_CHECKPOINTS)}")
    pins = FF_CHECKPOINTS[checkpoint]
    folder = cache_dir() / checkpoint
    if all((folder / name).is_file() and _file_sha256(folder / name) == digest for name, digest in pins.items()):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(ff_wheel()) as wheel:
        for name, digest in pins.items():
            data = wheel.read(f"alignn/ff/{checkpoint}/{name}")
            if sha256(data) != digest:
                raise ValueError(
                    f"{FF_WHEEL}: alignn/ff/{checkpoint}/{name} has sha256 {sha256(data)}, expected {digest}")
            partial = folder / f"{name}.part"
            partial.write_bytes(data)
            partial.replace(folder / name)
    return folder


def main() -> None:
    """Pre-fetch every ALIGNN-FF checkpoint (``python -m skdynemb.backbones.alignn``)."""
    for checkpoint in FF_CHECKPOINTS:
        print(fetch_ff(checkpoint))
