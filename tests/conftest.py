import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from skdynemb._paths import shared_dir  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder (data + fixtures); tests needing it skip when absent."""
    root = shared_dir()
    if root is None:
        pytest.skip("../shared not present")
    return root
