"""The model zoo: small transformers tvlens trains itself on synthetic ICL tasks, shipped in the package.

No machine here can download weights, so every analysis, test and notebook runs on these.
Each model is one ``weights/NAME.safetensors`` file (weights in TransformerLens layout; the
metadata header holds everything below) plus ``weights/NAME.json`` with the architecture, task,
training config, final metrics, training history and tvlens version — and each is re-created by
``tvlens zoo train NAME`` from its recipe in :mod:`tvlens.zoo.specs`.

Re-training never touches the shipped weights unless asked to: it writes to the user's zoo
directory (:func:`user_dir`: ``$TVLENS_ZOO_DIR``, else ``$XDG_CACHE_HOME/tvlens/zoo``, else
``~/.cache/tvlens/zoo``), and ``load(name, directory=user_dir())`` reads it back. Only an explicit
``directory=WEIGHTS_DIR`` (``tvlens zoo train NAME --into-package``) rewrites the package.

    >>> import tvlens
    >>> tvlens.zoo.list()
    ['perm-mix', 'perm-mix-tvp', 'token-offset', ...]
    >>> model = tvlens.zoo.load("perm-mix")      # a HookedModel on the installed TL line
    >>> task = tvlens.zoo.task("perm-mix")       # the task family it was trained on
"""

from tvlens.zoo.catalog import WEIGHTS_DIR, info, list, load, spec, task, train_model, user_dir, weights_path
from tvlens.zoo.specs import SPECS, ZooSpec

__all__ = ["SPECS", "WEIGHTS_DIR", "ZooSpec", "info", "list", "load", "spec", "task", "train_model", "user_dir",
           "weights_path"]
