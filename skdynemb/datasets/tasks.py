"""One JARVIS property with a train/val/test split, from the data folder when there is one, else online.

The examples and tutorials start from the same question: "give me a JARVIS property and its
split, wherever the data is". :func:`jarvis_split_task` answers it once: the local leaderboard
file with its official split when a data folder is found (``data_dir``, ``$SKDYNEMB_DATA``, or
``shared/data`` beside a clone), else a seeded random sample of JARVIS-DFT through jarvis-tools
(a download), split 80:10:10.
"""

from __future__ import annotations

import numpy as np

from ._core import PropertyTask
from .local import JARVIS_LEADERBOARD_FILE, data_file, jarvis_leaderboard_task
from .online import fetch_jarvis
from .splits import train_val_test_split

#: JARVIS release the online fallback samples from (the one the leaderboard splits were drawn from)
ONLINE_RELEASE = "dft_3d_2021"


def jarvis_split_task(prop: str, data_dir=None, *, online_sample: int = 1000,
                      random_state: int = 0) -> tuple[PropertyTask, dict[str, np.ndarray], str]:
    """A JARVIS property task, its train/val/test positions, and where both came from.

    Parameters
    ----------
    prop : str
        A JARVIS property, e.g. ``"formation_energy_peratom"`` (eV/atom).
    data_dir : str or Path, optional
        The data folder holding ``jarvis/``; default ``$SKDYNEMB_DATA``, else ``shared/data``
        beside a clone of the repository. A folder that is named but lacks the file is an error.
    online_sample : int, default=1000
        Without a data folder: how many random JARVIS-DFT entries to download and use.
    random_state : int, default=0
        Seed of the online sample and of its 80:10:10 split (the local file keeps its official split).

    Returns
    -------
    task : PropertyTask
        Structures and values of ``prop`` (entries without a value dropped online).
    parts : dict of str to ndarray of int
        ``"train"``, ``"val"``, ``"test"`` -> positions into ``task``.
    source : str
        One line saying which data and split were used (for the user's log).
    """
    path = data_file(JARVIS_LEADERBOARD_FILE, data_dir)
    if path is not None:
        task = jarvis_leaderboard_task(prop, path=path)
        return task, task.split_indices(), f"data: {path} (official JARVIS leaderboard split)"
    task = fetch_jarvis(ONLINE_RELEASE, sample=online_sample, random_state=random_state).task(prop, missing="drop")
    parts = dict(zip(("train", "val", "test"), train_val_test_split(len(task), random_state=random_state)))
    source = (f"data: no data folder (data_dir, $SKDYNEMB_DATA or ../shared/data): JARVIS-DFT {ONLINE_RELEASE} "
              f"through jarvis-tools, {online_sample} random entries, seeded 80:10:10 split (seed {random_state})")
    return task, parts, source
