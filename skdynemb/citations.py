"""What to cite: the method's paper, the backbone that made the embeddings, models and datasets.

The same works are listed in the repository's ``CITATION.cff`` and on the docs' Citing page.
"""

from __future__ import annotations

#: BibTeX entries by key
ENTRIES = {
    # venue and DOI from the publisher's record as indexed by the llmXive librarian (2026-06-28); the
    # record lists the first five authors, then "et al."; volume and article number not yet known to us
    "gupta2026dynamic": (
        "@article{gupta2026dynamic, title={Dynamic embedding representation for graph neural networks to "
        "enhance materials property prediction with limited datasets}, author={Gupta, Vishu and Choudhary, "
        "Kamal and Li, Youjia and Kilic, Muhammed Nur Talha and Wines, Daniel and others}, journal={Materials "
        "Research Express}, year={2026}, doi={10.1088/2053-1591/ae5148}}"
    ),
    "choudhary2021alignn": (
        "@article{choudhary2021alignn, title={Atomistic Line Graph Neural Network for improved materials "
        "property predictions}, author={Choudhary, Kamal and DeCost, Brian}, journal={npj Computational "
        "Materials}, volume={7}, pages={185}, year={2021}, doi={10.1038/s41524-021-00650-1}}"
    ),
    "choudhary2023alignnff": (
        "@article{choudhary2023alignnff, title={Unified graph neural network force-field for the periodic "
        "table: solid state applications}, author={Choudhary, Kamal and DeCost, Brian and Major, Lily and "
        "Butler, Keith and Thiyagalingam, Jeyan and Tavazza, Francesca}, journal={Digital Discovery}, "
        "volume={2}, pages={346--355}, year={2023}, doi={10.1039/D2DD00096B}}"
    ),
    "xie2018cgcnn": (
        "@article{xie2018cgcnn, title={Crystal Graph Convolutional Neural Networks for an Accurate and "
        "Interpretable Prediction of Material Properties}, author={Xie, Tian and Grossman, Jeffrey C.}, "
        "journal={Physical Review Letters}, volume={120}, pages={145301}, year={2018}, "
        "doi={10.1103/PhysRevLett.120.145301}}"
    ),
    "deng2023chgnet": (
        "@article{deng2023chgnet, title={CHGNet as a pretrained universal neural network potential for "
        "charge-informed atomistic modelling}, author={Deng, Bowen and Zhong, Peichen and Jun, KyuJung and "
        "Riebesell, Janosh and Han, Kevin and Bartel, Christopher J. and Ceder, Gerbrand}, "
        "journal={Nature Machine Intelligence}, volume={5}, pages={1031--1041}, year={2023}, "
        "doi={10.1038/s42256-023-00716-3}}"
    ),
    "park2024sevennet": (
        "@article{park2024sevennet, title={Scalable Parallel Algorithm for Graph Neural Network Interatomic "
        "Potentials in Molecular Dynamics Simulations}, author={Park, Yutack and Kim, Jaesun and Hwang, "
        "Seungwoo and Han, Seungwu}, journal={Journal of Chemical Theory and Computation}, volume={20}, "
        "number={11}, pages={4857--4868}, year={2024}, doi={10.1021/acs.jctc.4c00190}}"
    ),
    "kim2024sevennetmf": (
        "@article{kim2024sevennetmf, title={Data-Efficient Multifidelity Training for High-Fidelity Machine "
        "Learning Interatomic Potentials}, author={Kim, Jaesun and Kim, Jisu and Kim, Jaehoon and Lee, Jiho "
        "and Park, Yutack and Kang, Youngho and Han, Seungwu}, journal={Journal of the American Chemical "
        "Society}, volume={147}, number={1}, pages={1042--1054}, year={2024}, doi={10.1021/jacs.4c14455}}"
    ),
    "goodall2020roost": (
        "@article{goodall2020roost, title={Predicting materials properties without crystal structure: deep "
        "representation learning from stoichiometry}, author={Goodall, Rhys E. A. and Lee, Alpha A.}, "
        "journal={Nature Communications}, volume={11}, pages={6280}, year={2020}, "
        "doi={10.1038/s41467-020-19964-7}}"
    ),
    "jha2018elemnet": (
        "@article{jha2018elemnet, title={ElemNet: Deep Learning the Chemistry of Materials From Only "
        "Elemental Composition}, author={Jha, Dipendra and Ward, Logan and Paul, Arindam and Liao, Wei-keng "
        "and Choudhary, Alok and Wolverton, Chris and Agrawal, Ankit}, journal={Scientific Reports}, "
        "volume={8}, pages={17593}, year={2018}, doi={10.1038/s41598-018-35934-y}}"
    ),
    "wang2021crabnet": (
        "@article{wang2021crabnet, title={Compositionally restricted attention-based network for materials "
        "property predictions}, author={Wang, Anthony Yu-Tung and Kauwe, Steven K. and Murdock, Ryan J. and "
        "Sparks, Taylor D.}, journal={npj Computational Materials}, volume={7}, pages={77}, year={2021}, "
        "doi={10.1038/s41524-021-00545-1}}"
    ),
    "jain2013materialsproject": (
        "@article{jain2013materialsproject, title={Commentary: The Materials Project: A materials genome "
        "approach to accelerating materials innovation}, author={Jain, Anubhav and Ong, Shyue Ping and "
        "Hautier, Geoffroy and Chen, Wei and Richards, William Davidson and Dacek, Stephen and Cholia, "
        "Shreyas and Gunter, Dan and Skinner, David and Ceder, Gerbrand and Persson, Kristin A.}, "
        "journal={APL Materials}, volume={1}, pages={011002}, year={2013}, doi={10.1063/1.4812323}}"
    ),
    "choudhary2020jarvis": (
        "@article{choudhary2020jarvis, title={The joint automated repository for various integrated "
        "simulations (JARVIS) for data-driven materials design}, author={Choudhary, Kamal and others}, "
        "journal={npj Computational Materials}, volume={6}, pages={173}, year={2020}, "
        "doi={10.1038/s41524-020-00440-1}}"
    ),
    "dunn2020matbench": (
        "@article{dunn2020matbench, title={Benchmarking materials property prediction methods: the Matbench "
        "test set and Automatminer reference algorithm}, author={Dunn, Alexander and Wang, Qi and Ganose, "
        "Alex and Dopp, Daniel and Jain, Anubhav}, journal={npj Computational Materials}, volume={6}, "
        "pages={138}, year={2020}, doi={10.1038/s41524-020-00406-3}}"
    ),
}

#: backbone name -> keys of the works behind it (the network, and the data it was trained on)
BACKBONES = {
    "cgcnn-mp-eform": ("xie2018cgcnn", "jain2013materialsproject"),
    "alignn": ("choudhary2021alignn",),
    "alignn-mp-eform": ("choudhary2021alignn", "jain2013materialsproject"),
    # CHGNet's versions; MPtrj, their training data, was published with CHGNet (r2SCAN: fine-tuned on MP r2SCAN)
    **{name: ("deng2023chgnet",) for name in ("chgnet", "chgnet-0.3.0", "chgnet-0.2.0")},
    "chgnet-r2scan": ("deng2023chgnet", "jain2013materialsproject"),
    # SevenNet checkpoints, trained on MPtrj (CHGNet's paper); the multi-fidelity one also on MP r2SCAN
    **{name: ("park2024sevennet", "deng2023chgnet") for name in ("sevenn-0", "sevenn-0-22may2024", "sevenn-l3i5")},
    "sevenn-mf-0": ("park2024sevennet", "kim2024sevennetmf", "deng2023chgnet", "jain2013materialsproject"),
    # the official ALIGNN-FF checkpoints (the default backbone), trained on JARVIS-DFT energies and forces
    **{name: ("choudhary2021alignn", "choudhary2023alignnff", "choudhary2020jarvis")
       for name in ("alignn-ff", "alignn-ff-wt01", "alignn-ff-wt1", "alignn-ff-wt10", "alignn-ff-tie-complete",
                    "alignn-ff-wt10-tie-complete")},
}


def citations(backbone: str | None = None) -> list[str]:
    """BibTeX entries to cite for embeddings made with ``backbone``.

    Parameters
    ----------
    backbone : str, optional
        A registered backbone name; None (or a backbone registered by you) gives the method's
        paper only.

    Returns
    -------
    entries : list of str
        The paper first, then the backbone's network and its training data.

    Examples
    --------
    >>> [entry.split(",")[0] for entry in citations("chgnet")]
    ['@article{gupta2026dynamic', '@article{deng2023chgnet']
    """
    keys = ("gupta2026dynamic", *BACKBONES.get(backbone, ()))
    return [ENTRIES[k] for k in keys]
