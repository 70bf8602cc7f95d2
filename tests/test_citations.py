"""citations() follows the backbone; CITATION.cff lists the same works."""

import re
from pathlib import Path

import pytest

from skdynemb.backbones import available_backbones
from skdynemb.citations import BACKBONES, ENTRIES, citations
from skdynemb.featurizers import DynamicEmbeddingFeaturizer

REPO = Path(__file__).resolve().parents[1]


def _keys(entries):
    return [re.match(r"@\w+\{(\w+),", e).group(1) for e in entries]


def test_citations_follow_the_backbone():
    assert set(BACKBONES) == set(available_backbones())  # every built-in backbone names its works
    assert _keys(citations("chgnet")) == ["gupta2026dynamic", "deng2023chgnet"]
    assert _keys(citations("cgcnn-mp-eform")) == ["gupta2026dynamic", "xie2018cgcnn", "jain2013materialsproject"]
    assert "xie2018cgcnn" not in _keys(citations("alignn-mp-eform"))
    assert _keys(citations("alignn-ff")) == [  # the default backbone: ALIGNN, ALIGNN-FF, its training data
        "gupta2026dynamic", "choudhary2021alignn", "choudhary2023alignnff", "choudhary2020jarvis",
    ]
    assert _keys(citations("sevenn-0")) == ["gupta2026dynamic", "park2024sevennet", "deng2023chgnet"]
    assert "kim2024sevennetmf" in _keys(citations("sevenn-mf-0"))  # the multi-fidelity checkpoint
    assert DynamicEmbeddingFeaturizer().citations() == citations("alignn-ff")
    assert _keys(citations(None)) == _keys(citations("my-own-backbone")) == ["gupta2026dynamic"]
    for name in ("chgnet", "alignn", "cgcnn-mp-eform"):  # no fit (no weights) needed to ask
        assert DynamicEmbeddingFeaturizer(backbone=name).citations() == citations(name)


def test_entries_are_balanced_bibtex_with_a_doi_where_published():
    for key, entry in ENTRIES.items():
        assert entry.count("{") == entry.count("}") and _keys([entry]) == [key]
        if "journal=" in entry:
            assert re.search(r"doi=\{10\.\d+/", entry), key


def test_citation_cff_lists_the_same_works():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["preferred-citation"]["title"] in ENTRIES["gupta2026dynamic"]
    assert f'doi={{{cff["preferred-citation"]["doi"]}}}' in ENTRIES["gupta2026dynamic"]
    assert cff["preferred-citation"]["journal"] in ENTRIES["gupta2026dynamic"]
    dois = {cff["preferred-citation"]["doi"]} | {ref["doi"] for ref in cff["references"]}
    assert dois == set(re.findall(r"doi=\{([^}]+)\}", " ".join(ENTRIES.values())))
    import skdynemb

    assert str(cff["version"]) == skdynemb.__version__
