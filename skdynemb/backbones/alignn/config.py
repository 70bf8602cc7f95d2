"""ALIGNN hyper-parameters: the official ``ALIGNNConfig`` / ``ALIGNNAtomWiseConfig`` fields we load.

Two official architectures share one network here: ``"alignn"`` (BatchNorm) and
``"alignn_atomwise"`` (ALIGNN-FF: LayerNorm, energy per atom, forces by autograd). They differ in
``norm`` only, as far as the atom, bond and angle features and the prediction go. Every field of an
official config is either honoured, accepted because it only concerns training or forces
(:data:`TRAINING_ONLY`), or refused by name with the reason (:data:`REFUSED`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: ``alignn_atomwise`` fields that change neither the stages nor the energy output: loss weights and
#: penalties, settings of the autograd forces / stress (which extraction does not compute), and
#: ``lg_on_fly`` (the line graph computed inside the model instead of beforehand: the same graph).
TRAINING_ONLY = frozenset({
    "grad_multiplier", "calculate_gradient", "graphwise_weight", "gradwise_weight", "stresswise_weight",
    "atomwise_weight", "force_mult_natoms", "energy_mult_natoms", "include_pos_deriv", "stress_multiplier",
    "add_reverse_forces", "batch_stress", "lg_on_fly", "use_penalty", "penalty_factor", "penalty_threshold",
    "additional_output_weight",
})
#: Fields refused when set away from their neutral value: field -> (neutral value, reason).
REFUSED = {
    "extra_features": (0, "per-structure extra input features are not supported"),
    "atomwise_output_features": (0, "a per-atom output head (fc_atomwise) is not supported"),
    "additional_output_features": (0, "an additional output head is not supported"),
    "multiply_cutoff": (False, "multiplying edge features by the cutoff envelope is not supported"),
    "zero_inflated": (False, "zero-inflated outputs are not supported"),
}
NORMS = ("batch", "layer")
_ARCHITECTURE_NORM = {"alignn": "batch", "alignn_atomwise": "layer"}


@dataclass
class ALIGNNConfig:
    """Hyper-parameters, with the field names and defaults of the official configs.

    ``norm`` is ours: the normalisation in every MLP layer and edge-gated convolution,
    ``"batch"`` (``BatchNorm1d``, plain ALIGNN) or ``"layer"`` (``LayerNorm``, ALIGNN-FF); it
    defaults to the official architecture's (``name``). ``use_cutoff_function`` replaces the bond
    length by the official envelope of degree ``exponent`` (``1 - 10t^3 + 15t^4 - 6t^5`` for 3,
    alignn 2023's only one; t = length / ``inner_cutoff`` Å, 0 beyond) before its Gaussian
    expansion, as ``alignn_atomwise``.

    Attributes
    ----------
    name : {"alignn", "alignn_atomwise"}
        The official architecture.
    alignn_layers, gcn_layers : int
        Number of ALIGNN layers (atom graph then line graph) and of edge-gated graph convolutions after them.
    atom_input_features : int
        Width of the atom input features (92, the CGCNN features; the only supported value).
    edge_input_features, triplet_input_features : int
        Gaussians of the bond-length (0..8 Å) and angle-cosine (-1..1) expansions.
    embedding_features : int
        Width of the intermediate bond / angle embedding.
    hidden_features : int
        Width of every stage's atom, bond and angle features.
    output_features : int
        Outputs of the regression head.
    link : {"identity", "log", "logit"}
        Output link: none, ``exp`` or ``sigmoid`` of the linear head.
    classification : bool
        Classification head (``num_classes`` log-probabilities) instead of regression.
    num_classes : int
        Classes of the classification head.
    norm : {"batch", "layer"} or None
        The normalisation (see above); None: the architecture's.
    use_cutoff_function : bool
        Apply the smooth cutoff envelope to the bond lengths.
    inner_cutoff : float
        Length (Å) where the envelope reaches 0.
    exponent : int
        Degree p of the envelope.
    """

    name: str = "alignn"
    alignn_layers: int = 4
    gcn_layers: int = 4
    atom_input_features: int = 92
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 256
    output_features: int = 1
    link: str = "identity"
    classification: bool = False
    num_classes: int = 2
    norm: str | None = None
    use_cutoff_function: bool = False
    inner_cutoff: float = 6.0
    exponent: int = 3

    def __post_init__(self):
        if self.name not in _ARCHITECTURE_NORM:
            raise ValueError(f"model name {self.name!r}: only {sorted(_ARCHITECTURE_NORM)} architectures are supported")
        if self.norm is None:
            self.norm = _ARCHITECTURE_NORM[self.name]
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.link not in ("identity", "log", "logit"):
            raise ValueError(f"link must be 'identity', 'log' or 'logit', got {self.link!r}")
        if self.atom_input_features != 92:
            raise ValueError(
                f"atom_input_features={self.atom_input_features}: only the 92-d CGCNN features are supported"
            )
        for name in ("alignn_layers", "gcn_layers", "edge_input_features", "triplet_input_features",
                     "embedding_features", "hidden_features", "output_features", "num_classes"):
            value, smallest = getattr(self, name), 0 if name.endswith("_layers") else 1
            if not isinstance(value, int) or value < smallest:
                raise ValueError(f"{name} must be an integer >= {smallest}, got {value!r}")
        if not self.inner_cutoff > 0:
            raise ValueError(f"inner_cutoff must be > 0 Å, got {self.inner_cutoff!r}")
        if not isinstance(self.exponent, int) or self.exponent < 1:
            raise ValueError(f"exponent must be an integer >= 1, got {self.exponent!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "ALIGNNConfig":
        """From a dict of official config fields (``config.json["model"]``).

        Training-only fields are dropped; refused or unknown fields raise (they would change the model).

        Parameters
        ----------
        values : dict
            Field name -> value, as in alignn's ``config.json``.

        Returns
        -------
        config : ALIGNNConfig
            The architecture settings.

        Raises
        ------
        ValueError
            A refused field has a non-neutral value, or a field is unknown.
        """
        values = dict(values)
        for name, (neutral, reason) in REFUSED.items():
            if name in values and values.pop(name) != neutral:
                raise ValueError(f"ALIGNN config field {name}: {reason}")
        values = {k: v for k, v in values.items() if k not in TRAINING_ONLY}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown ALIGNN config fields {unknown}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)
