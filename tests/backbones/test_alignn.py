"""Pure-PyTorch ALIGNN: state-dict compatibility and output parity with the official DGL model."""

import json
import shutil
import urllib.error
import zipfile

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from skdynemb.backbones import alignn
from skdynemb.backbones.alignn import fetch
from skdynemb.backbones.alignn.graphs import KNearestGraph, batch_graphs
from skdynemb.structures import Crystal, to_crystal

NAMES = [
    "JVASP-21210", "JVASP-1372", "JVASP-1996", "JVASP-10", "JVASP-14441", "JVASP-28565", "JVASP-15345",
    "JVASP-22556", "JVASP-97984", "JVASP-76567", "JVASP-98224", "JVASP-60702", "JVASP-97677",
    "handbuilt-Cu1-cubic10A",
]
CANON = KNearestGraph()
X_STAGES = ["00_embed", *(f"0{k + 1}_alignn{k}" for k in range(4)), *(f"0{k + 5}_gcn{k}" for k in range(4))]


@pytest.fixture(scope="module")
def fixtures(shared):
    return shared / "fixtures" / "alignn"


@pytest.fixture(scope="module")
def reference_model(fixtures):
    config = alignn.ALIGNNConfig.from_dict(json.loads((fixtures / "alignn_config.json").read_text()))
    model = alignn.ALIGNN(config)
    model.load_state_dict(torch.load(fixtures / "alignn_random_state_dict.pt", weights_only=True), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def graphs(fixtures):
    out = {}
    for name in NAMES:
        ref = np.load(fixtures / "graphs" / f"{name}.npz")
        crystal = Crystal(ref["lattice_mat"], ref["frac_coords"], ref["atomic_numbers"], name)
        out[name] = (crystal, CANON.build(crystal), ref)
    return out


def edge_maps(graph, ref):
    """Reference edge k -> our distinct edge, reference line-graph edge t -> our distinct line-graph edge
    (edges matched by (src, dst, image); our distinct edges are sorted by it, and every one stands for
    as many reference edges as its multiplicity)."""
    span = max(int(np.abs(graph.edge_image).max()), int(np.abs(ref["edge_image"]).max())) + 1

    def keys(src, dst, image):
        key = src * graph.num_nodes + dst
        for c in range(3):
            key = key * (2 * span + 1) + image[:, c] + span
        return key

    ours = keys(graph.edge_src, graph.edge_dst, graph.edge_image)
    assert np.all(np.diff(ours) > 0)
    wanted = keys(ref["edge_src"], ref["edge_dst"], ref["edge_image"])
    edges = np.searchsorted(ours, wanted)
    np.testing.assert_array_equal(ours[edges], wanted)
    np.testing.assert_array_equal(np.bincount(edges, minlength=graph.num_edges), graph.edge_mult)
    key = graph.lg_src * graph.num_edges + graph.lg_dst
    wanted = edges[ref["lg_src"]] * graph.num_edges + edges[ref["lg_dst"]]
    lg = np.searchsorted(key, wanted)
    np.testing.assert_array_equal(key[lg], wanted)
    np.testing.assert_array_equal(np.bincount(lg, minlength=graph.num_lg_edges), graph.lg_mult)
    return edges, lg


def test_cgcnn_table_matches_official(fixtures):
    ours = alignn.cgcnn_feature_table().numpy()
    official = np.load(fixtures / "cgcnn_atom_feature_table.npy")
    assert ours.shape == (101, 92)
    np.testing.assert_array_equal(ours, official[:101])  # Z > 100 has no CGCNN features (we refuse them)


def test_state_dict_matches_official_contract(fixtures):
    expected = {}
    for line in (fixtures / "state_dict_keys.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            expected[key] = (shape, dtype)
    state = alignn.ALIGNN(alignn.ALIGNNConfig()).state_dict()
    assert list(state) == list(expected)
    for key, tensor in state.items():
        assert (str(tuple(tensor.shape)), str(tensor.dtype).replace("torch.", "")) == expected[key], key


def test_rbf_widths():
    model = alignn.ALIGNN(alignn.ALIGNNConfig())
    # gamma = 1 / spacing of the centres (not squared): 79 / 8 for 80 bins on 0-8 Å, 39 / 2 for 40 on -1..1
    assert model.edge_embedding[0].gamma == pytest.approx(79 / 8, rel=1e-6)
    assert model.angle_embedding[0].gamma == pytest.approx(39 / 2, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_stages_match_official(reference_model, graphs, fixtures, name):
    _, graph, ref = graphs[name]
    out = np.load(fixtures / "model_outputs" / f"{name}.npz")
    with torch.no_grad():
        stages = reference_model.stages(batch_graphs([graph]))
    assert len(stages.x) == 9 and len(stages.y) == 9 and len(stages.z) == 5
    for k, stage in enumerate(X_STAGES):
        np.testing.assert_allclose(stages.x[k].numpy(), out[f"x_{stage}"], rtol=0, atol=1e-4, err_msg=stage)
    edges, lg = edge_maps(graph, ref)
    proj = out["proj_matrix"]
    for k, stage in enumerate(X_STAGES):
        y = stages.y[k].numpy()[edges].astype(np.float64)
        np.testing.assert_allclose(y[out["y_row_idx"]], out[f"y_{stage}_rows"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(y @ proj, out[f"y_{stage}_proj"], rtol=0, atol=1e-4 * np.abs(proj).sum(0).max())
        np.testing.assert_allclose(y.mean(0), out[f"y_{stage}_colmean"], rtol=0, atol=1e-4)
    for k, stage in enumerate(X_STAGES[:5]):
        z = stages.z[k].numpy()[lg].astype(np.float64)
        np.testing.assert_allclose(z[out["z_row_idx"]], out[f"z_{stage}_rows"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(z @ proj, out[f"z_{stage}_proj"], rtol=0, atol=1e-4 * np.abs(proj).sum(0).max())
        np.testing.assert_allclose(z.mean(0), out[f"z_{stage}_colmean"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(stages.readout.numpy(), out["readout"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(float(stages.output[0]), float(out["output"]), rtol=0, atol=1e-5)


def test_batched_matches_official_and_single(reference_model, graphs, fixtures):
    ref = np.load(fixtures / "model_outputs" / "batched_all.npz")
    names = [str(n) for n in ref["names"]]
    batch = batch_graphs([graphs[n][1] for n in names])
    with torch.no_grad():
        batched = reference_model.stages(batch)
        again = reference_model.stages(batch)
    np.testing.assert_allclose(batched.output.numpy(), ref["outputs"], rtol=0, atol=1e-5)
    for a, b in zip(batched.x, again.x):  # same input -> identical output
        assert torch.equal(a, b)
    offsets = batch.node_offsets
    for g, name in enumerate(names):
        with torch.no_grad():
            single = reference_model.stages(batch_graphs([graphs[name][1]]))
        assert abs(float(single.output[0]) - float(batched.output[g])) < 1e-5
        for k in range(9):
            np.testing.assert_allclose(
                batched.x[k][offsets[g] : offsets[g + 1]].numpy(), single.x[k].numpy(), rtol=0, atol=1e-5
            )


def test_pooled_edges_are_means_of_full_edges(reference_model, graphs):
    """Per-graph bond / angle means over the multigraph (distinct edges weighted by multiplicity)."""
    batch = batch_graphs([graphs[n][1] for n in NAMES[:4]])
    multigraph = batch_graphs([graphs[n][1].expanded() for n in NAMES[:4]])
    with torch.no_grad():
        full, pooled = reference_model.stages(multigraph), reference_model.stages(batch, pool_edges=True)
        prediction = reference_model(batch)
    torch.testing.assert_close(prediction, pooled.output, rtol=0, atol=0)
    for g in range(4):
        edges = slice(int(multigraph.edge_offsets[g]), int(multigraph.edge_offsets[g + 1]))
        lg = slice(int(multigraph.lg_offsets[g]), int(multigraph.lg_offsets[g + 1]))
        for k in range(9):
            torch.testing.assert_close(pooled.y[k][g], full.y[k][edges].mean(0), rtol=0, atol=1e-5)
        for k in range(5):
            torch.testing.assert_close(pooled.z[k][g], full.z[k][lg].mean(0), rtol=0, atol=1e-5)


def test_autograd_path_equals_inference_path(reference_model, graphs):
    """Eval with autograd on (full tensors) and without (blocked, in place) compute the same thing."""
    batch = batch_graphs([graphs[n][1] for n in ("JVASP-60702", "JVASP-1372")])
    with torch.no_grad():
        fast = reference_model.stages(batch, pool_edges=True)
    slow = reference_model.stages(batch, pool_edges=True)
    assert slow.output.requires_grad
    for a, b in zip(fast.x + fast.y + fast.z, slow.x + slow.y + slow.z):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- checkpoints


def test_load_bare_state_dict_and_backbone_parity(fixtures, graphs):
    """Load the fixture .pt by path (config inferred), then Crystal -> forward_stages == official stages."""
    backbone = alignn.load(fixtures / "alignn_random_state_dict.pt")
    expected_names = ["embedding", *(f"alignn{k}" for k in range(1, 5)), *(f"gcn{k}" for k in range(1, 5))]
    assert backbone.stage_names == expected_names
    assert backbone.stage_dims == [256] * 9 and backbone.bond_dims == [256] * 9 and backbone.angle_dims == [256] * 5
    names = ["JVASP-1372", "JVASP-15345", "JVASP-60702"]
    outputs = backbone.forward_stages([graphs[n][0] for n in names])
    for name, result in zip(names, outputs):
        ref = np.load(fixtures / "model_outputs" / f"{name}.npz")
        assert len(result.atom) == 9 and len(result.bond) == 9 and len(result.angle) == 5
        for k, stage in enumerate(X_STAGES):
            assert result.atom[k].dtype == np.float32
            np.testing.assert_allclose(result.atom[k], ref[f"x_{stage}"], rtol=0, atol=1e-4)
            np.testing.assert_allclose(result.bond[k], ref[f"y_{stage}_colmean"], rtol=0, atol=1e-4)
        for k, stage in enumerate(X_STAGES[:5]):
            np.testing.assert_allclose(result.angle[k], ref[f"z_{stage}_colmean"], rtol=0, atol=1e-4)
    predictions = backbone.predict([graphs[n][0] for n in names])
    expected = [float(np.load(fixtures / "model_outputs" / f"{n}.npz")["output"]) for n in names]
    np.testing.assert_allclose(predictions, expected, rtol=0, atol=1e-5)


def small_model(seed=0):
    torch.manual_seed(seed)
    model = alignn.ALIGNN(alignn.ALIGNNConfig(alignn_layers=1, gcn_layers=1, hidden_features=16, embedding_features=8))
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def nacl() -> Crystal:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return to_crystal(rocksalt, id="NaCl")


def test_save_and_load_roundtrip_folder_and_zip(tmp_path):
    model = small_model()
    rule = KNearestGraph(7.0, 10, canonize=False)
    folder = alignn.save_checkpoint(model, model.config, tmp_path / "run", rule)
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["hidden_features"] == 16 and config["cutoff"] == 7.0 and config["use_canonize"] is False
    # the figshare zips keep their files in a sub-folder
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("config.json", "best_model.pt"):
            z.write(folder / name, f"some_run/{name}")
    batch = batch_graphs([CANON.build(nacl())])
    with torch.no_grad():
        expected = model(batch)
    for source in (folder, archive):
        loaded, loaded_rule = alignn.load_checkpoint(source)
        assert loaded_rule == rule
        assert loaded.config == model.config
        with torch.no_grad():
            assert torch.equal(loaded(batch), expected)
    backbone = alignn.load(archive)
    assert backbone.rule == rule and backbone.stage_dims == [16] * 3


def test_ignite_style_checkpoint_loads_without_running_its_code(tmp_path):
    """Official ``checkpoint_<n>.pt`` files also pickle optimiser/scheduler objects: only 'model' is taken."""
    model = small_model()
    calls = []
    torch.save(
        {"model": model.state_dict(), "lr_scheduler": {"anneal_func": _Recorder(calls)}, "trainer": {"epoch": 3}},
        tmp_path / "checkpoint_3.pt",
    )
    torch.save({"model": {}}, tmp_path / "checkpoint_1.pt")  # an older, unusable one: must not be picked
    (tmp_path / "config.json").write_text(json.dumps({"model": model.config.to_dict()}))
    loaded, _ = alignn.load_checkpoint(tmp_path)
    assert calls == []
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


class _Recorder:
    """Unpickling this would call ``_record`` (a stand-in for arbitrary code in a pickle)."""

    def __init__(self, calls):
        self.calls = calls

    def __reduce__(self):
        return (_record, (self.calls,))


def _record(calls):
    calls.append("ran")
    return calls


def test_bad_checkpoints_raise_clearly(tmp_path):
    model = small_model()
    state = model.state_dict()
    config = {"model": model.config.to_dict()}

    def write(state_dict, name):
        folder = tmp_path / name
        folder.mkdir()
        torch.save(state_dict, folder / "best_model.pt")
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    missing = {k: v for k, v in state.items() if k != "fc.bias"}
    with pytest.raises(ValueError, match="missing keys.*fc.bias"):
        alignn.load_checkpoint(write(missing, "missing"))
    wrong = dict(state, **{"fc.weight": torch.zeros(2, 16)})
    with pytest.raises(ValueError, match="fc.weight has shape"):
        alignn.load_checkpoint(write(wrong, "shape"))
    nan = dict(state, **{"fc.weight": torch.full_like(state["fc.weight"], float("nan"))})
    with pytest.raises(ValueError, match="non-finite"):
        alignn.load_checkpoint(write(nan, "nan"))
    with pytest.raises(ValueError, match="unknown ALIGNN config fields"):
        alignn.ALIGNNConfig.from_dict({**config["model"], "dropout": 0.1})
    radius = write(state, "radius")
    (radius / "config.json").write_text(json.dumps({**config, "neighbor_strategy": "radius_graph"}))
    with pytest.raises(ValueError, match="neighbor_strategy='radius_graph'"):
        alignn.load_checkpoint(radius)
    torch.save({"model": _Recorder([]), "optimizer": {}}, tmp_path / "pickled_module.pt")
    with pytest.raises(ValueError, match="no 'model' state dict"):
        alignn.load_checkpoint(tmp_path / "pickled_module.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no best_model.pt"):
        alignn.load_checkpoint(tmp_path / "empty")


def test_load_by_name_offline_and_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKDYNEMB_CACHE", str(tmp_path / "cache"))

    def offline(url, filename):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(fetch.urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match=r"weights='/path/to/mp_e_form_alignn.zip'"):
        alignn.load("mp_e_form_alignn")
    assert not list((tmp_path / "cache" / "alignn").iterdir())  # no partial file left behind
    # a zip placed in the cache (as a download would) is used without the network
    model = small_model()
    folder = alignn.save_checkpoint(model, model.config, tmp_path / "run")
    shutil.make_archive(str(tmp_path / "cache" / "alignn" / "mp_e_form_alignn"), "zip", folder)
    backbone = alignn.load("mp_e_form_alignn")
    assert backbone.name == "alignn:mp_e_form_alignn" and backbone.stage_dims == [16] * 3


def test_load_requires_explicit_weights():
    with pytest.raises(ValueError, match="needs weights"):
        alignn.load()
    with pytest.raises(ValueError, match="not an official model name"):
        alignn.load("no_such_model")
    a, b = alignn.load("random"), alignn.load("random")
    assert a.fingerprint() == b.fingerprint()


# ----------------------------------------------------------------------------- backbone


def test_forward_stages_batched_equals_single_and_refuses_unknown_elements():
    backbone = alignn.load("random")
    crystals = [
        nacl(),
        to_crystal(Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"],
                                             [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]), id="ZnO"),
        to_crystal(Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]), id="Fe"),
    ]
    results = backbone.forward_stages(crystals[:2]) + backbone.forward_stages(crystals[2:])
    for crystal, result in zip(crystals, results):
        with torch.no_grad():
            single = backbone.module.stages(batch_graphs([CANON.build(crystal).expanded()]))
        assert [a.shape for a in result.atom] == [(crystal.num_sites, 256)] * 9
        for k in range(9):
            np.testing.assert_allclose(result.atom[k], single.x[k].numpy(), rtol=0, atol=1e-5)
            np.testing.assert_allclose(result.bond[k], single.y[k].mean(0).numpy(), rtol=0, atol=1e-5)
        for k in range(5):
            np.testing.assert_allclose(result.angle[k], single.z[k].mean(0).numpy(), rtol=0, atol=1e-5)
    mendelevium = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), np.array([11, 101]), "Md-sample")
    with pytest.raises(ValueError, match=r"sample 1 \(id='Md-sample'\).*\[101\]"):
        backbone.forward_stages([nacl(), mendelevium])


def test_small_model_trains():
    """A CPU-sized config runs forward and backward (for pretraining)."""
    model = small_model().train()
    batch = batch_graphs([CANON.build(nacl()).expanded()] * 2)
    loss = model(batch).pow(2).sum()
    loss.backward()
    # as in the official model, the last layers' angle / bond outputs do not reach the prediction
    unused = {name for name, p in model.named_parameters() if p.grad is None}
    assert unused == {
        f"{layer}.bn_edges.{p}" for layer in ("alignn_layers.0.edge_update", "gcn_layers.0") for p in ("weight", "bias")
    }
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_matches_cpu(reference_model, graphs):
    batch = batch_graphs([graphs[n][1] for n in NAMES])
    with torch.no_grad():
        cpu = reference_model.stages(batch).x[-1]
        gpu = reference_model.to("cuda").stages(batch.to("cuda")).x[-1].cpu()
    reference_model.to("cpu")
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)


def test_official_names_come_from_alignns_registries():
    from skdynemb.backbones.alignn import names

    known = alignn.official_names()
    # the legacy figshare table, the ALIGNN-FF table and the ALIGNN2 registry of alignn 2026.8.11
    assert {"mp_e_form_alignn", "jv_optb88vdw_total_energy_alignn", "qm9_U0_alignn", "alignnff_wt10",
            "v12.2.2024_dft_3d_307k", "formation_energy_peratom_knn"} <= set(known)
    assert set(alignn.OFFICIAL_MODELS) <= set(known) and len(known) > 200
    with pytest.raises(ValueError, match="'alex_supercon_Tc' is not supported: ALIGNN2 model on a 'radius' graph"):
        names.resolve("alex_supercon_Tc")
    with pytest.raises(ValueError, match="unknown ALIGNN model 'nope'"):
        names.resolve("nope")


def test_forward_stages_runs_the_batch_it_is_given(monkeypatch, tmp_path):
    model = small_model()
    backbone = alignn.load(alignn.save_checkpoint(model, model.config, tmp_path / "small"))
    calls = []
    real = backbone.module.stages
    monkeypatch.setattr(backbone.module, "stages",
                        lambda batch, **kw: calls.append(batch.num_graphs) or real(batch, **kw))
    crystals = [nacl()] * 70
    assert len(backbone.forward_stages(crystals)) == 70 and calls == [70]  # one block-diagonal batch, no re-chunking


# ----------------------------------------------------------------------------- inference path (issue 30)


def test_one_block_per_batch_off_the_cpu_and_blocks_do_not_change_rows(reference_model, graphs, monkeypatch):
    """On a GPU a batch's edges are one block; on the CPU blocks of EDGE_BLOCK. The blocking does not
    change the rows (checked on the CPU by making one block hold every edge, as on a GPU)."""
    from skdynemb.backbones.alignn import layers

    assert layers.edge_block(torch.empty(0, device="meta"), 123_456) == 123_456
    assert layers.edge_block(torch.empty(0), 123_456) == layers.EDGE_BLOCK
    batch = batch_graphs([graphs[n][1] for n in ("JVASP-60702", "JVASP-1372", "JVASP-14441")])
    assert len(batch.lg_src) > 3 * 256
    results = []
    for size in (256, 10**9):  # several blocks (the last one partial) / one block
        monkeypatch.setattr(layers, "EDGE_BLOCK", size)
        with torch.no_grad():
            results.append(reference_model.stages(batch, pool_edges=True))
    blocked, whole = results
    for a, b in zip(blocked.x + blocked.y + blocked.z, whole.x + whole.y + whole.z):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_cpu_workspace_is_kept_per_thread_and_does_not_change_rows(reference_model, graphs, monkeypatch):
    """CPU inference keeps its scratch memory (gate tables, sums, the pass's own bond and angle rows)
    per thread between passes; a pass after a larger and a smaller batch gives the same bits as one
    with a fresh workspace (in a new thread). Off the CPU each pass gets a fresh workspace."""
    import threading

    from skdynemb.backbones.alignn import layers
    from skdynemb.backbones.alignn.layers import held_workspace

    large = batch_graphs([graphs[n][1] for n in ("JVASP-60702", "JVASP-1372", "JVASP-14441")])
    small = batch_graphs([graphs["JVASP-1372"][1]])
    with held_workspace("cpu") as a, held_workspace("cpu") as b, held_workspace("meta") as c, \
            held_workspace("meta") as d:
        assert a is b and c is not d
    monkeypatch.setattr(layers, "KEEP_WORKSPACE_BYTES", 4096)
    with held_workspace("cpu") as kept:  # a workspace beyond the limit is emptied when its pass ends
        kept.take("big", (1025,), torch.zeros(0))
        assert kept.nbytes > layers.KEEP_WORKSPACE_BYTES
    with held_workspace("cpu") as after:
        assert after is not kept and after.nbytes == 0
    monkeypatch.undo()
    with torch.no_grad():
        first = reference_model.stages(small, pool_edges=True)
        reference_model.stages(large, pool_edges=True)
        again = reference_model.stages(small, pool_edges=True)
    fresh = {}

    def in_new_thread():  # a new thread: its own (empty) workspace, and autograd on by default
        with held_workspace("cpu") as workspace:
            fresh["workspace"] = workspace
        with torch.no_grad():
            fresh["stages"] = reference_model.stages(small, pool_edges=True)

    worker = threading.Thread(target=in_new_thread)
    worker.start()
    worker.join()
    with held_workspace("cpu") as mine:
        assert fresh["workspace"] is not mine and mine.nbytes > 0
    for stages in (again, fresh["stages"]):
        for a, b in zip(first.x + first.y + first.z + [first.output], stages.x + stages.y + stages.z + [stages.output]):
            assert torch.equal(a, b)


def test_distinct_embeddings_equal_the_embedding_of_every_row(reference_model):
    from skdynemb.backbones.alignn.layers import rowwise_distinct

    cosines = torch.tensor([0.5, -0.25, 0.5, 1.0, -0.25, 0.5, 0.0])
    with torch.no_grad():
        rows, index = rowwise_distinct(reference_model.angle_embedding, cosines, 256)
        every = reference_model.angle_embedding(cosines)
    assert rows.shape == (4, 256)  # -0.25, 0, 0.5, 1
    assert index.tolist() == [2, 0, 2, 3, 0, 2, 1]
    torch.testing.assert_close(rows[index], every, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="inference"):
        rowwise_distinct(reference_model.angle_embedding, cosines, 256)  # autograd on


def test_weighted_segment_mean_by_hand():
    from skdynemb.backbones.alignn.layers import weighted_segment_mean

    values = torch.tensor([[1.0, 2.0], [3.0, -4.0], [10.0, 0.5], [7.0, 7.0]])
    index = torch.tensor([0, 0, 2, 2])
    weight = torch.tensor([1.0, 3.0, 2.0, 1.0])
    mean = weighted_segment_mean(values, index, 3, weight)
    expected = [[(1 + 9) / 4, (2 - 12) / 4], [0, 0], [(20 + 7) / 3, (1 + 7) / 3]]
    np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-7)


def test_denormals_are_flushed_only_inside_the_forward(reference_model, graphs):
    """The inference forward flushes float32 denormals (speed), restores the caller's mode after, and
    its rows are the same bits as without flushing."""
    from skdynemb.backbones.alignn.layers import _denormals_flushed

    batch = batch_graphs([graphs[n][1] for n in ("JVASP-60702", "JVASP-1372")])
    with torch.no_grad():
        plain = reference_model._stages(batch, pool_edges=True)  # no flushing
        assert not _denormals_flushed()
        flushed = reference_model.stages(batch, pool_edges=True)
        assert not _denormals_flushed()
        try:
            torch.set_flush_denormal(True)
            reference_model.stages(batch, pool_edges=True)
            assert _denormals_flushed()
        finally:
            torch.set_flush_denormal(False)
    for a, b in zip(plain.x + plain.y + plain.z, flushed.x + flushed.y + flushed.z):
        assert torch.equal(a, b)


def test_precision_choices(graphs):
    """fp32 is the default; tf32 is fp32 on a CPU; bf16 (autocast) runs on a CPU, gives float32 rows
    close to fp32's but not equal; the choice is a dataclass field, so it keys the cache."""
    from skdynemb.provenance import backbone_identity

    backbone = alignn.load("random")
    assert backbone.precision == "fp32"
    crystals = [graphs[n][0] for n in ("JVASP-1372", "JVASP-60702")]
    fp32 = backbone.forward_stages(crystals)
    identities = {"fp32": backbone_identity(backbone)}
    results = {}
    for precision in ("tf32", "bf16"):
        backbone.precision = precision
        results[precision] = backbone.forward_stages(crystals)
        identities[precision] = backbone_identity(backbone)
    assert len({json.dumps(i, sort_keys=True, default=str) for i in identities.values()}) == 3
    for a, t, b in zip(fp32, results["tf32"], results["bf16"]):
        for k in range(9):
            np.testing.assert_array_equal(t.atom[k], a.atom[k])
            assert b.atom[k].dtype == np.float32 and np.isfinite(b.atom[k]).all()
            scale = np.abs(a.atom[k]).max()
            assert 0 < np.abs(b.atom[k] - a.atom[k]).max() < 0.05 * scale
    assert backbone.predict(crystals).dtype == np.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        alignn.load("random", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        alignn.AlignnBackbone(name="x", module=backbone.module, stage_names=["embedding"], stage_dims=[256],
                              precision="half")


def test_means_from_distinct_rows_equal_means_of_every_row():
    """The embedding stage's bond/angle means come from the distinct rows, each weighted by its copies'
    summed weight per graph; by hand and against the mean over the gathered rows."""
    from skdynemb.backbones.alignn.layers import distinct_weighted_segment_mean, weighted_segment_mean

    rows = torch.tensor([[1.0, -2.0], [0.5, 4.0], [3.0, 0.0]])
    index = torch.tensor([2, 0, 2, 1, 1, 0])
    segment = torch.tensor([0, 0, 0, 1, 1, 1])
    weight = torch.tensor([1.0, 2.0, 1.0, 3.0, 1.0, 4.0])
    mean = distinct_weighted_segment_mean(rows, index, segment, 3, weight)
    # graph 0: 2 x row 2 + 2 x row 0 over weight 4; graph 1: 4 x row 1 + 4 x row 0 over 8; graph 2 empty
    expected = [[(6 + 2) / 4, (0 - 4) / 4], [(2 + 4) / 8, (16 - 8) / 8], [0, 0]]
    np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-7)
    assert torch.equal(mean, weighted_segment_mean(rows[index], segment, 3, weight))


def test_first_layer_gathers_distinct_rows_block_by_block(reference_model, graphs, monkeypatch):
    """Inference with pooled edges never forms the embedding stage's per-edge y and z: the first layer
    gathers them from the distinct rows block by block. Same rows as with y and z formed whole
    (``pool_edges=False``, then averaged), with several blocks and with one block (the GPU path)."""
    from skdynemb.backbones.alignn import layers
    from skdynemb.backbones.alignn.layers import weighted_segment_mean

    batch = batch_graphs([graphs[n][1] for n in ("JVASP-60702", "JVASP-1372", "JVASP-14441")])
    for size in (256, 10**9):
        monkeypatch.setattr(layers, "EDGE_BLOCK", size)
        with torch.no_grad():
            pooled = reference_model.stages(batch, pool_edges=True)
            whole = reference_model.stages(batch, pool_edges=False)
        for a, b in zip(pooled.x, whole.x):
            assert torch.equal(a, b)
        for a, b in zip(pooled.y, whole.y):
            mean = weighted_segment_mean(b, batch.edge_graph_index, batch.num_graphs, batch.edge_weight)
            torch.testing.assert_close(a, mean, rtol=0, atol=1e-6)
        for a, b in zip(pooled.z, whole.z):
            mean = weighted_segment_mean(b, batch.lg_graph_index, batch.num_graphs, batch.lg_count)
            torch.testing.assert_close(a, mean, rtol=0, atol=1e-6)
